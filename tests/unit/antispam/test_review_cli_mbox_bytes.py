"""The messages of an mbox file reach ``bayes train``, ``scan`` and ``bayes evaluate`` as they
lie in the file (less the From_ line), as a message file does: they were parsed and written out
again by the email package, which refolds long headers, adds a space after a bare colon and
turns a bare CR into a line end, so the Bayes identity of a message could change and the same
message learned from a file and then from an mbox was counted twice."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.pipeline.rawmessage import iter_messages
from gateway_milter.store.memory import MemoryStore

LONG = "Received: from mx.sender.test (mx.sender.test [192.0.2.1]) by mx.example.com (Postfix) with ESMTPS id 4XyZ"
ONE = (f"{LONG}\n"
       "Subject:no space after the colon\n"
       "From: a@sender.test\nTo: bob@example.com\nMessage-ID: <cd1@sender.test>\n"
       "Content-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: quoted-printable\n\n"
       "Servers at 35-60% off the list price.\r=\n\nhttp://www.sender.test/offer\n").encode()
TWO = b"From: b@sender.test\nSubject: two\nMessage-ID: <two@sender.test>\n\nthe second one\n"


def mbox(tmp_path: Path, *messages: bytes) -> Path:
    p = tmp_path / "spam.mbox"
    p.write_bytes(b"".join(b"From a@sender.test Mon Jan  1 00:00:00 2024\n" + m + b"\n" for m in messages))
    return p


def test_it_hands_over_each_message_as_it_lies_in_the_file(tmp_path: Path) -> None:
    assert [raw for _, raw in iter_messages(mbox(tmp_path, ONE, TWO))] == [ONE, TWO]


@pytest.mark.django_db  # (the published policy's trust path)
def test_a_message_learned_from_a_file_is_known_when_read_from_an_mbox(tmp_path: Path, store: MemoryStore) -> None:
    (tmp_path / "one.eml").write_bytes(ONE)
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(tmp_path / "one.eml"), stdout=out, stderr=io.StringIO())
    assert out.getvalue().startswith("learned 1 message(s)")
    out = io.StringIO()
    call_command("bayes", "train", "--spam", str(mbox(tmp_path, ONE)), stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "learned 0 message(s), 1 already known"
