"""A file that starts with a byte order mark or empty lines (an editor's) is read from its first
line with text, by ``bayes train`` as by the web admin's training upload (a zip's members
too): an mbox so written was learned as one message by the upload, and a single message's
header as its body (another identity than the same mail's, so learned twice)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from gateway_milter.pipeline.rawmessage import iter_message_refs, iter_messages

MSG = (b"From: Alice <alice@sender.test>\nTo: bob@example.com\nSubject: cheap watches\n"
       b"Message-ID: <w1@sender.test>\n\nBuy now.\n")
LEADS = [b"\n", b"\r\n\r\n", b"\xef\xbb\xbf", b"\n\xef\xbb\xbf", b"\xef\xbb\xbf\n"]


def _mbox(n: int) -> bytes:
    return b"".join(b"From MAILER-DAEMON Mon Nov 30 10:00:00 2026\n" + MSG.replace(b"w1", b"w%d" % i) + b"\n"
                    for i in range(n))


@pytest.mark.parametrize("lead", LEADS)
def test_bayes_train_reads_one_message_from_its_first_field(tmp_path: Path, lead: bytes) -> None:
    f = tmp_path / "one.eml"
    f.write_bytes(lead + MSG)
    assert [raw for _, raw in iter_messages(f)] == [MSG]
    (ref, raw), = list(iter_message_refs(f))
    assert raw == MSG and ref.read() == MSG  # (read again where it lies, as a corpus is)


@pytest.mark.parametrize("lead", LEADS)
def test_the_upload_reads_an_mbox_and_a_message_past_the_lead(tmp_path: Path, lead: bytes) -> None:
    from webadmin import training

    def spooled(name: str, data: bytes) -> list[bytes]:
        up = tmp_path / name
        up.write_bytes(data)
        spool = training.Spool(tmp_path / (name + ".spool"))
        training.messages_of(up, spool)
        spool.close()
        return spool.messages(0, len(spool.spans))

    assert len(spooled("box.mbox", lead + _mbox(3))) == 3
    assert spooled("one.eml", lead + MSG) == [MSG]
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("box.mbox", lead + _mbox(3))
        zf.writestr("one.eml", lead + MSG)
    assert len(spooled("mail.zip", z.getvalue())) == 4
