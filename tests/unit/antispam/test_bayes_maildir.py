"""What a path given to ``bayes train`` (and ``scan``, ``bayes evaluate``) reads: a maildir's
cur/ and new/ only, never its tmp/, its Maildir++ subfolders (``.Junk``: named on their own) or
the server's bookkeeping files; a plain directory of messages and mbox files as before."""

from __future__ import annotations

import io
import json
import mailbox
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.pipeline.rawmessage import iter_messages
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg


def maildir_plus(base: Path) -> Path:
    """A Dovecot Maildir++ mailbox: INBOX (cur, new, tmp) with .Junk and .Sent subfolders."""
    md = base / "Maildir"
    for folder in (md, md / ".Junk", md / ".Sent", md / ".Archive.2025"):
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True)
        (folder / "dovecot-uidlist").write_text("3 V1700000000 N3\n1 1700000000.M1.host:2,S\n")
        (folder / "dovecot.index.log").write_bytes(b"\x01\x02\x00")
        if folder != md:
            (folder / "maildirfolder").write_bytes(b"")
    (md / "dovecot-uidvalidity").write_text("65a1b2c3\n")
    (md / "dovecot-keywords").write_text("0 $Junk\n")
    (md / "subscriptions").write_text("Junk\nSent\n")
    (md / "courierimapuiddb").write_text("1 2 3\n")
    (md / "cur" / "1700000001.M1P1.host:2,S").write_bytes(msg("lunch", "see you at noon"))
    (md / "new" / "1700000002.M2P1.host").write_bytes(msg("agenda", "the project review agenda"))
    (md / "tmp" / "1700000003.M3P1.host").write_bytes(b"From: half\r\nSubject: still being deliv")
    (md / "cur" / ".hidden").write_bytes(msg("hidden", "not a message of the mailbox"))
    (md / ".Junk" / "cur" / "1700000004.M4P1.host:2,S").write_bytes(msg("win", "lottery winner prize"))
    (md / ".Junk" / "new" / "1700000005.M5P1.host").write_bytes(msg("win again", "claim your lottery prize"))
    (md / ".Sent" / "cur" / "1700000006.M6P1.host:2,S").write_bytes(msg("re: lunch", "fine by me"))
    (md / ".Archive.2025" / "cur" / "1700000007.M7P1.host:2,S").write_bytes(msg("old", "an old thread"))
    return md


def _names(path: Path) -> list[str]:
    return [str(Path(label).relative_to(path)) for label, _ in iter_messages(path)]


def test_a_maildir_reads_its_cur_and_new_only(tmp_path: Path) -> None:
    md = maildir_plus(tmp_path)
    assert _names(md) == ["cur/1700000001.M1P1.host:2,S", "new/1700000002.M2P1.host"]


def test_a_maildir_plus_subfolder_is_read_when_named(tmp_path: Path) -> None:
    md = maildir_plus(tmp_path)
    assert _names(md / ".Junk") == ["cur/1700000004.M4P1.host:2,S", "new/1700000005.M5P1.host"]


def test_a_plain_directory_reads_its_files_subdirectories_and_mboxes_as_before(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "more").mkdir(parents=True)
    (corpus / "0001.eml").write_bytes(msg("a", "one"))
    (corpus / "cmds").write_text("mv 0001.eml\n")  # (SpamAssassin's corpus: bayes train leaves it out)
    (corpus / "more" / "0002").write_bytes(msg("b", "two"))
    (corpus / ".DS_Store").write_bytes(b"\x00\x00")
    (corpus / ".git").mkdir()
    (corpus / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    mb = mailbox.mbox(str(corpus / "more" / "list.mbox"))
    for i in range(2):
        mb.add(msg(f"list {i}", "digest"))
    mb.close()
    maildir_plus(corpus / "mail")  # a maildir inside: its cur/ and new/ only
    assert _names(corpus) == ["0001.eml", "cmds", "mail/Maildir/cur/1700000001.M1P1.host:2,S",
                              "mail/Maildir/new/1700000002.M2P1.host", "more/0002", "more/list.mbox#1",
                              "more/list.mbox#2"]


def test_a_directory_with_cur_alone_is_read_as_before(tmp_path: Path) -> None:
    d = tmp_path / "spam"
    (d / "cur").mkdir(parents=True)
    (d / "cur" / "1.eml").write_bytes(msg("x", "y"))
    assert _names(d) == ["cur/1.eml"]


@pytest.mark.django_db  # (the published policy's trust path)
def test_bayes_train_ham_from_a_maildir_does_not_learn_its_junk_folder(tmp_path: Path, store: MemoryStore) -> None:
    md = maildir_plus(tmp_path)
    out = io.StringIO()
    call_command("bayes", "train", "--ham", str(md), "--spam", str(md / ".Junk"), stdout=out, stderr=io.StringIO())
    assert "learned 4 message(s)" in out.getvalue()
    out = io.StringIO()
    call_command("bayes", "stats", stdout=out)
    st = json.loads(out.getvalue())
    assert (st["spam_learned"], st["ham_learned"]) == (2, 2)


@pytest.mark.parametrize("missing", ["new", "cur"])
def test_a_maildir_copied_without_an_empty_folder_is_still_one(tmp_path: Path, missing: str) -> None:
    # tar, rsync filters and backup tools skip empty directories: a copy without new/ read its
    # tmp/ (half-delivered messages) as messages
    md = tmp_path / "copy"
    for sub in ("cur", "new", "tmp"):
        if sub != missing:
            (md / sub).mkdir(parents=True)
    kept = "new" if missing == "cur" else "cur"
    (md / kept / "1700000001.M1P1.host").write_bytes(msg("lunch", "see you at noon"))
    (md / "tmp" / "1700000003.M3P1.host").write_bytes(b"From: half\r\nSubject: still being deliv")
    assert _names(md) == [f"{kept}/1700000001.M1P1.host"]


def test_a_directory_named_tmp_among_plain_ones_is_read(tmp_path: Path) -> None:
    (tmp_path / "corpus" / "tmp").mkdir(parents=True)
    (tmp_path / "corpus" / "tmp" / "a.eml").write_bytes(msg("a", "b"))
    assert _names(tmp_path / "corpus") == ["tmp/a.eml"]
