"""The same message given in both ``--spam`` and ``--ham`` of one ``bayes train`` (a copy left in
the inbox and in the junk folder) is learned as neither, and the command says so: it was learned
as spam and then moved to ham (the class depending on which option came first in the sorted
order), and counted as learned twice."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg


def train_both(junk: Path, inbox: Path) -> tuple[str, dict[str, int]]:
    """``bayes train --spam JUNK --ham INBOX``: what it says, and ``bayes stats`` after it."""
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(junk), "--ham", str(inbox), stdout=out, stderr=io.StringIO())
    st = io.StringIO()
    call_command("bayes", "stats", stdout=st)
    return out.getvalue().strip(), json.loads(st.getvalue())


@pytest.mark.django_db  # (the published policy's trust path)
def test_a_message_given_as_spam_and_ham_is_learned_as_neither(tmp_path: Path, store: MemoryStore) -> None:
    junk, inbox = tmp_path / "junk", tmp_path / "inbox"
    junk.mkdir()
    inbox.mkdir()
    both = msg("quarterly figures", "the numbers for the board")
    (junk / "1.eml").write_bytes(both)
    (inbox / "1.eml").write_bytes(both)
    (junk / "2.eml").write_bytes(msg("win", "lottery winner prize"))
    (inbox / "2.eml").write_bytes(msg("lunch", "see you at noon"))
    said, st = train_both(junk, inbox)
    assert said == "learned 2 message(s), 0 already known, 1 given as both spam and ham not learned"
    assert (st["spam_learned"], st["ham_learned"]) == (1, 1)


@pytest.mark.django_db
def test_copies_that_differ_only_in_headers_bayes_ignores_are_one_message(tmp_path: Path, store: MemoryStore) -> None:
    # two mailboxes' copies: compared byte for byte they were two messages, learned as spam,
    # then moved to ham (or back), whichever came last, and nothing said so
    junk, inbox = tmp_path / "alice_junk", tmp_path / "bob_inbox"
    junk.mkdir()
    inbox.mkdir()
    base = msg("newsletter", "our monthly offers for you")
    (junk / "1.eml").write_bytes(b"Delivered-To: alice@example.com\r\nX-Spam-Flag: YES\r\n" + base)
    (inbox / "1.eml").write_bytes(b"Delivered-To: bob@example.com\n" + base.replace(b"\r\n", b"\n"))
    said, st = train_both(junk, inbox)
    assert said == "learned 0 message(s), 0 already known, 1 given as both spam and ham not learned"
    assert (st["spam_learned"], st["ham_learned"], st["token_model_spam"], st["token_model_ham"]) == (0, 0, 0, 0)


@pytest.mark.django_db
def test_a_copy_re_encoded_on_its_way_is_the_same_message(tmp_path: Path, store: MemoryStore) -> None:
    # the junk folder's copy re-encoded as quoted-printable: another body byte for byte, the same
    # Message-ID and text to Bayes; it was learned as one class, then moved to the other
    junk, inbox = tmp_path / "junk", tmp_path / "inbox"
    junk.mkdir()
    inbox.mkdir()
    head = ("From: Carol <carol@example.org>\r\nTo: bob@example.com\r\nSubject: Lunch on Friday\r\n"
            "Message-ID: <lunch-42@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n")
    (inbox / "1.eml").write_bytes((head + "Content-Transfer-Encoding: 8bit\r\n\r\n"
                                   "Hi Bob, shall we have lunch at the caf\u00e9 on Friday? Carol\r\n").encode())
    (junk / "1.eml").write_bytes((head + "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                                  "Hi Bob, shall we have lunch at the caf=C3=A9 on Friday? Carol\r\n").encode())
    (junk / "2.eml").write_bytes(msg("win", "lottery winner prize"))
    (inbox / "2.eml").write_bytes(msg("lunch", "see you at noon"))
    said, st = train_both(junk, inbox)
    assert said == "learned 2 message(s), 0 already known, 1 given as both spam and ham not learned"
    assert (st["spam_learned"], st["ham_learned"]) == (1, 1)


@pytest.mark.django_db
def test_messages_with_another_body_or_message_id_are_still_learned(tmp_path: Path, store: MemoryStore) -> None:
    junk, inbox = tmp_path / "junk", tmp_path / "inbox"
    junk.mkdir()
    inbox.mkdir()
    (junk / "1.eml").write_bytes(msg("offer", "buy cheap watches now"))
    (inbox / "1.eml").write_bytes(msg("offer", "buy cheap watches now!"))  # another text
    a = msg("same text", "identical words here")
    (junk / "2.eml").write_bytes(a)
    (inbox / "2.eml").write_bytes(a.replace(b"Message-ID: <", b"Message-ID: <other-"))
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(junk), "--ham", str(inbox), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "learned 4 message(s), 0 already known"


@pytest.mark.django_db
def test_a_path_with_no_message_is_named(tmp_path: Path, store: MemoryStore) -> None:
    # a mistyped or empty --ham folder: only spam was learned and nothing said so
    junk, empty = tmp_path / "junk", tmp_path / "Maildir"
    junk.mkdir()
    (empty / "cur").mkdir(parents=True)
    (junk / "1.eml").write_bytes(msg("win", "lottery winner prize"))
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(junk), "--ham", str(empty), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == f"learned 1 message(s), 0 already known; no message in {empty}"
    out = io.StringIO()
    call_command("bayes", "forget", "--ham", str(empty), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == f"forgot 0 message(s); no message in {empty}"
