"""A body line starting ``From `` inside a message of an mbox file does not start a new message
unless it follows an empty line (RFC 4155's From_ line; Dovecot, Thunderbird and Content-Length
mboxes leave such lines unquoted): any line starting ``From `` did, which cut the message there
and handed ``bayes train`` and ``scan`` a headerless fragment as one more message."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.pipeline.rawmessage import iter_messages
from gateway_milter.store.memory import MemoryStore

ONE = (b"From: a@sender.test\nTo: bob@example.com\nSubject: the plan\nMessage-ID: <plan@sender.test>\n\n"
       b"Here is the plan.\nFrom Monday on we meet at ten.\n>From the minutes: agreed.\n")
TWO = b"From: b@sender.test\nSubject: two\nMessage-ID: <two@sender.test>\n\nthe second one\n"
FROM_ = b"From a@sender.test Mon Jan  1 00:00:00 2024\n"


def test_a_body_line_starting_from_is_part_of_its_message(tmp_path: Path) -> None:
    p = tmp_path / "box.mbox"
    p.write_bytes(FROM_ + ONE + b"\n" + FROM_ + TWO)
    assert [raw for _, raw in iter_messages(p)] == [ONE, TWO]


def test_a_crlf_mbox_splits_at_its_from_lines_and_keeps_the_body_from_line(tmp_path: Path) -> None:
    crlf = [m.replace(b"\n", b"\r\n") for m in (FROM_ + ONE, FROM_ + TWO)]
    p = tmp_path / "box.mbox"
    p.write_bytes(crlf[0] + b"\r\n" + crlf[1] + b"\r\n")
    assert [raw for _, raw in iter_messages(p)] == [ONE.replace(b"\n", b"\r\n"), TWO.replace(b"\n", b"\r\n")]


def test_a_last_message_without_a_final_newline_is_read_whole(tmp_path: Path) -> None:
    p = tmp_path / "box.mbox"
    p.write_bytes(FROM_ + ONE + b"\n" + FROM_ + TWO.rstrip(b"\n"))
    assert [raw for _, raw in iter_messages(p)] == [ONE, TWO.rstrip(b"\n")]


@pytest.mark.django_db  # (the published policy's trust path)
def test_bayes_train_learns_the_messages_of_the_mbox_and_no_fragment(tmp_path: Path, store: MemoryStore) -> None:
    p = tmp_path / "ham.mbox"
    p.write_bytes(FROM_ + ONE + b"\n" + FROM_ + TWO)
    out = io.StringIO()
    call_command("bayes", "train", "--ham", str(p), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "learned 2 message(s), 0 already known"


def test_files_joined_without_an_empty_line_still_split_at_their_from_lines(tmp_path: Path) -> None:
    p = tmp_path / "joined.mbox"
    p.write_bytes(FROM_ + ONE + b"From b@sender.test  Tue Feb 27 09:15:02 +0000 2024\n" + TWO)
    assert [raw for _, raw in iter_messages(p)] == [ONE, TWO]
