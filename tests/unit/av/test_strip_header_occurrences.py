"""Strip-and-deliver when the whole message is the blocked attachment: its top-level
Content-Type, Content-Transfer-Encoding and Content-Disposition headers are replaced, every copy
of them. libmilter's SMFIR_CHGHEADER deletes the index-th occurrence only, so a delete that
stands for "every occurrence" would leave a sender's second Content-Type in front of the
notice's."""

from __future__ import annotations

from email.parser import BytesHeaderParser

from gateway_milter.transforms.strip import strip_parts
from tests.unit.spine.conftest import apply_like_an_mta

RAW = (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: application/x-msdownload; name=\"a.exe\"\r\n"
       b"Content-Disposition: attachment; filename=\"a.exe\"\r\n"
       b"content-type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
       b"CONTENT-TRANSFER-ENCODING: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n")
FINDING = {"part": "0", "name": "a.exe", "declared": "application/x-msdownload", "detected": "application/x-dosexec",
           "reasons": ["blocked type: executable"], "blocked": True}


def test_it_replaces_every_copy_of_the_top_level_content_headers() -> None:
    res = strip_parts(RAW, [FINDING], "q1")
    assert all(e.index >= 1 for e in res.header_edits if e.op == "delete")
    headers = list(BytesHeaderParser().parsebytes(RAW).items())
    delivered = apply_like_an_mta(headers, list(res.header_edits))
    content = [(n.lower(), v) for n, v in delivered if n.lower().startswith("content-")]
    assert content == [("content-type", 'text/plain; charset="utf-8"'),
                       ("content-transfer-encoding", "quoted-printable")], content
