"""What ``bayes train`` and ``bayes forget`` take as mail: files that are not mail (a README,
a spreadsheet, a mail client's index beside the messages) are skipped and counted, not learned
as mail; an mbox's quoted ``>From `` body lines are read as the message was sent."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.pipeline.rawmessage import iter_message_refs, iter_messages, starts_with_field, unquote_from
from gateway_milter.store.memory import MemoryStore

FROM_ = b"From sender@example.com Mon Jan  1 00:00:00 2024\n"


def fixed(subject: str, body: str) -> bytes:
    return (f"From: a@sender.test\nTo: bob@example.com\nSubject: {subject}\n"
            f"Message-ID: <{subject}@sender.test>\n\n{body}\n").encode()


@pytest.mark.parametrize(("raw", "mail"), [
    (b"Return-Path: <a@b.test>\nSubject: x\n\nbody", True),
    (b"\xef\xbb\xbfFrom: a@b.test\n\nbody", True),
    (b"\n\nX-Mailer: y\n\nbody", True),
    (FROM_ + b"Subject: x\n\nbody", True),
    (b"Exported by MailClient 9.\nSubject: x\n", False),
    (b"id,subject,date\n1,hello,2024\n", False),
    (b"\x00\x01binary index", False),
    (b"  Subject: indented\n\n", False),
])
def test_it_tells_mail_from_other_files(raw: bytes, mail: bool) -> None:
    assert starts_with_field(raw) is mail


@pytest.mark.django_db  # (the published policy's trust path)
def test_train_and_forget_skip_files_that_are_not_mail_and_say_how_many(tmp_path: Path, store: MemoryStore) -> None:
    d = tmp_path / "export"
    d.mkdir()
    (d / "1.eml").write_bytes(fixed("one", "cheap pills now"))
    (d / "2.eml").write_bytes(fixed("two", "winner lottery prize"))
    (d / "README.txt").write_bytes(b"Exported by MailClient 9 on Monday.\nUnread: 4\n")
    (d / "index.csv").write_bytes(b"id,subject\n1,one\n2,two\n")
    (d / "empty.eml").write_bytes(b"")
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(d), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == ("learned 2 message(s), 0 already known, 1 empty file(s) skipped, "
                                      "2 file(s) that are not mail skipped")
    stats = BayesClassifier(store).stats("global")
    assert stats["spam_learned"] == 2
    out = io.StringIO()
    call_command("bayes", "forget", "--spam", str(d), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == ("forgot 2 message(s), 1 empty file(s) skipped, "
                                      "2 file(s) that are not mail skipped")
    assert BayesClassifier(store).stats("global")["spam_learned"] == 0


def test_an_mboxs_quoted_from_lines_lose_one_quote(tmp_path: Path) -> None:
    sent = fixed("plan", "Here is the plan.\n\nFrom Monday on we meet at ten.\n>From the minutes: agreed.")
    quoted = sent.replace(b"\nFrom Monday", b"\n>From Monday").replace(b"\n>From the", b"\n>>From the")
    p = tmp_path / "box.mbox"
    p.write_bytes(FROM_ + quoted + b"\n" + FROM_ + fixed("two", "second"))
    assert [raw for _, raw in iter_messages(p)] == [sent, fixed("two", "second")]
    # read again from where it lies (bayes train's second reading) gives the same bytes
    assert [ref.read() for ref, _ in iter_message_refs(p)] == [sent, fixed("two", "second")]
    files: dict = {}
    try:
        assert [ref.read(files) for ref, _ in iter_message_refs(p)] == [sent, fixed("two", "second")]
    finally:
        for fh in files.values():
            fh.close()


def test_a_writer_that_quotes_nothing_keeps_the_senders_own_quote() -> None:
    # an unquoted body line starting "From " shows the writer quotes nothing (Dovecot, Thunderbird)
    raw = fixed("x", "From Monday on.\n>From the minutes.")
    assert unquote_from(raw) == raw
    assert unquote_from(fixed("y", "no from line at all")) == fixed("y", "no from line at all")


def test_a_single_message_file_is_not_unquoted(tmp_path: Path) -> None:
    raw = fixed("x", ">From the minutes.")
    (tmp_path / "m.eml").write_bytes(raw)
    assert [r for _, r in iter_messages(tmp_path / "m.eml")] == [raw]


@pytest.mark.django_db
def test_a_message_learned_from_an_mbox_is_the_message_the_milter_saw(tmp_path: Path, store: MemoryStore) -> None:
    sent = fixed("plan", "Cheap pills.\n\nFrom Monday on, half price.")
    (tmp_path / "sent.eml").write_bytes(sent)
    (tmp_path / "box.mbox").write_bytes(FROM_ + sent.replace(b"\nFrom Monday", b"\n>From Monday"))
    call_command("bayes", "train", "--spam", str(tmp_path / "sent.eml"), stdout=io.StringIO(), stderr=io.StringIO())
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(tmp_path / "box.mbox"), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "learned 0 message(s), 1 already known"
