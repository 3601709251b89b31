"""Strip-and-deliver when the whole message is the blocked attachment: its top-level
Content-Type, Content-Transfer-Encoding and Content-Disposition headers are replaced, every copy
of them. libmilter's SMFIR_CHGHEADER deletes the index-th occurrence only, so a delete that
stands for "every occurrence" would leave a sender's second Content-Type in front of the
notice's."""

from __future__ import annotations

from email.parser import BytesHeaderParser

from gateway_milter.transforms.strip import strip_parts
from gateway_milter.verdict import HeaderEdit

RAW = (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: invoice\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: application/x-msdownload; name=\"a.exe\"\r\n"
       b"Content-Disposition: attachment; filename=\"a.exe\"\r\n"
       b"content-type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
       b"CONTENT-TRANSFER-ENCODING: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAA\r\n")
FINDING = {"part": "0", "name": "a.exe", "declared": "application/x-msdownload", "detected": "application/x-dosexec",
           "reasons": ["blocked type: executable"], "blocked": True}


def apply_like_an_mta(headers: list[tuple[str, str]], edits: list[HeaderEdit]) -> list[tuple[str, str]]:
    """A delete removes the index-th occurrence of the name (1-based, case-insensitive) only;
    the milter front sends index 0 as 1."""
    out = list(headers)
    for e in edits:
        if e.op == "add":
            out.append((e.name, e.value))
        elif e.op == "insert":
            out.insert(0, (e.name, e.value))
        else:
            positions = [i for i, (n, _) in enumerate(out) if n.lower() == e.name.lower()]
            if max(e.index, 1) <= len(positions):
                del out[positions[max(e.index, 1) - 1]]
    return out


def test_it_replaces_every_copy_of_the_top_level_content_headers() -> None:
    res = strip_parts(RAW, [FINDING], "q1")
    assert all(e.index >= 1 for e in res.header_edits if e.op == "delete")
    headers = list(BytesHeaderParser().parsebytes(RAW).items())
    delivered = apply_like_an_mta(headers, list(res.header_edits))
    content = [(n.lower(), v) for n, v in delivered if n.lower().startswith("content-")]
    assert content == [("content-type", 'text/plain; charset="utf-8"'),
                       ("content-transfer-encoding", "quoted-printable")], content
