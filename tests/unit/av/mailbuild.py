"""Test messages for the MIME, antivirus and attachment layers, built in code (no EICAR file is
stored in the repository: the string comes from tests.services and is encoded here).

``AMBIGUOUS`` holds one message per evasion technique from RFC 2045/2046/2231 corner cases and
the public write-ups on MIME parser differentials; each hides the EICAR test string so that a
scanner reading the message with only one parser's interpretation would miss it.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile

from gateway_milter.context import ConnectionInfo, MessageContext
from gateway_milter.pipeline.runner import LayerRunner
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import Stage
from tests.services import EICAR

HEAD = (b"From: Alice <alice@sender.test>\r\nTo: bob@example.test\r\nSubject: test\r\n"
        b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <t1@sender.test>\r\nMIME-Version: 1.0\r\n")


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


EICAR_B64 = b64(EICAR)


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def with_attachment(payload: bytes, filename: str, ctype: str = "application/octet-stream",
                    text: str = "Please see the attached file.\r\n", name_param: str | None = None) -> bytes:
    disp = f'attachment; filename="{filename}"' if filename else "attachment"
    ct = ctype + (f'; name="{name_param}"' if name_param else "")
    return (HEAD + b'Content-Type: multipart/mixed; boundary="=_b1"\r\n\r\n'
            b"--=_b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text.encode() + b"\r\n"
            b"--=_b1\r\nContent-Type: " + ct.encode() + b"\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: " + disp.encode("utf-8") + b"\r\n\r\n" + b64(payload) + b"--=_b1--\r\n")


def plain(text: bytes = b"Hello Bob,\r\n\r\nthe meeting is at ten.\r\n") -> bytes:
    return HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text


def _part(ctype: bytes, body: bytes, cte: bytes = b"base64", extra: bytes = b"") -> bytes:
    return (b"Content-Type: " + ctype + b"\r\nContent-Transfer-Encoding: " + cte + b"\r\n" + extra + b"\r\n" + body)


TEXT_PART = b"Content-Type: text/plain\r\n\r\nNothing to see here.\r\n"
EVIL_PART = _part(b"application/octet-stream", EICAR_B64, extra=b'Content-Disposition: attachment; filename="x.bin"\r\n')

AMBIGUOUS: dict[str, bytes] = {
    # RFC 2045 5.1: a parameter appears once. First-wins and last-wins parsers split differently.
    "duplicate_boundary": HEAD + b'Content-Type: multipart/mixed; boundary="aaa"; boundary="bbb"\r\n\r\n'
    + b"--aaa\r\n" + TEXT_PART + b"--aaa--\r\n--bbb\r\n" + EVIL_PART + b"--bbb--\r\n",
    # RFC 5322 3.6: one Content-Type field. First says text/plain, second says multipart.
    "duplicate_content_type": HEAD + b"Content-Type: text/plain\r\n"
    + b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n'
    + b"--zz\r\n" + TEXT_PART + b"--zz\r\n" + EVIL_PART + b"--zz--\r\n",
    # RFC 2231 3: continuations. A parser without RFC 2231 takes the plain "decoy" value.
    "rfc2231_boundary": HEAD + b'Content-Type: multipart/mixed; boundary="decoy"; boundary*0="re"; boundary*1="al"\r\n\r\n'
    + b"--decoy\r\n" + TEXT_PART + b"--decoy--\r\n--real\r\n" + EVIL_PART + b"--real--\r\n",
    # RFC 5322 3.2.2: comments. A parser that does not strip them sees the boundary inside.
    "comment_boundary": HEAD + b'Content-Type: multipart/mixed; (boundary="cmt";) boundary="out"\r\n\r\n'
    + b"--out\r\n" + TEXT_PART + b"--out--\r\n--cmt\r\n" + EVIL_PART + b"--cmt--\r\n",
    # RFC 2045 5.1 quoted-string: a quote-unaware parser splits at the ';' inside the quotes.
    "semicolon_in_quotes": HEAD + b'Content-Type: multipart/mixed; boundary="semi;colon"\r\n\r\n'
    + b"--semi;colon\r\n" + TEXT_PART + b"--semi;colon--\r\n--semi\r\n" + EVIL_PART + b"--semi--\r\n",
    # RFC 2046 5.1.1: the epilogue after the close delimiter is to be ignored; lenient clients don't.
    "part_after_close": HEAD + b'Content-Type: multipart/mixed; boundary="end"\r\n\r\n'
    + b"--end\r\n" + TEXT_PART + b"--end--\r\n--end\r\n" + EVIL_PART + b"--end--\r\n",
    # RFC 2045 6: one Content-Transfer-Encoding. First-wins reads 7bit, last-wins decodes base64.
    "duplicate_transfer_encoding": HEAD + b'Content-Type: multipart/mixed; boundary="cte"\r\n\r\n'
    + b"--cte\r\n" + TEXT_PART + b"--cte\r\nContent-Type: application/octet-stream\r\n"
    + b"Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\n" + EICAR_B64 + b"--cte--\r\n",
    # RFC 2046 5.1.1: multipart without a boundary parameter; lenient clients guess it.
    "missing_boundary_param": HEAD + b"Content-Type: multipart/mixed\r\n\r\n"
    + b"--guess\r\n" + TEXT_PART + b"--guess\r\n" + EVIL_PART + b"--guess--\r\n",
    # RFC 5322 4.5.1 obsolete syntax: whitespace before the colon. Strict parsers drop the field.
    "space_before_colon": HEAD + b'Content-Type : multipart/mixed; boundary="sp"\r\n\r\n'
    + b"--sp\r\n" + TEXT_PART + b"--sp\r\n" + EVIL_PART + b"--sp--\r\n",
    # RFC 2045 6.1: the encoding has no parameters; some clients still decode "base64; x=y".
    "transfer_encoding_with_params": HEAD + b'Content-Type: multipart/mixed; boundary="j"\r\n\r\n'
    + b"--j\r\n" + TEXT_PART + b"--j\r\nContent-Type: application/octet-stream\r\n"
    + b"Content-Transfer-Encoding: base64; x=y\r\n\r\n" + EICAR_B64 + b"--j--\r\n",
    # Two media types in one field: first-type parsers see text/plain, others the multipart.
    "two_types_in_one_field": HEAD + b'Content-Type: text/plain, multipart/mixed; boundary="c"\r\n\r\n'
    + b"--c\r\n" + TEXT_PART + b"--c\r\n" + EVIL_PART + b"--c--\r\n",
    # RFC 2047 5: no encoded words in parameters; a decoding client splits on "ew".
    "encoded_word_boundary": HEAD + b'Content-Type: multipart/mixed; boundary="=?utf-8?q?ew?="\r\n\r\n'
    + b"--ew\r\n" + TEXT_PART + b"--ew\r\n" + EVIL_PART + b"--ew--\r\n",
    # RFC 2046 5.1.1: boundaries are case-sensitive; case-insensitive parsers see one more part.
    "boundary_case": HEAD + b'Content-Type: multipart/mixed; boundary="abc"\r\n\r\n'
    + b"--abc\r\n" + TEXT_PART + b"--ABC\r\n" + EVIL_PART + b"--abc--\r\n",
    # A NUL inside a quoted boundary: C parsers stop at the NUL and read "n".
    "nul_in_boundary": HEAD + b'Content-Type: multipart/mixed; boundary="n\x00x"; boundary="n"\r\n\r\n'
    + b"--n\r\n" + TEXT_PART + b"--n\r\n" + EVIL_PART + b"--n--\r\n",
    # RFC 2231 3 with both "boundary*" and "boundary*0": Python's email parser raises TypeError
    # (email.utils.decode_params sorts None against int); a scanner built on it sees nothing.
    "rfc2231_parser_crash": HEAD + b"Content-Type: multipart/mixed; boundary*=utf-8''x; boundary*0=y\r\n\r\n"
    + b"--x\r\n" + TEXT_PART + b"--x\r\n" + EVIL_PART + b"--x--\r\n",
    # A uuencoded file inside a text body (pre-MIME convention): shown as an attachment by many
    # clients, invisible to a MIME-only parser.
    "uuencoded_in_text": HEAD + b"Content-Type: text/plain\r\n\r\nHello, see below.\r\n\r\n"
    + b"begin 644 invoice.exe\r\n" + b"".join(binascii.b2a_uu(EICAR[i:i + 45]).replace(b"\n", b"\r\n")
                                           for i in range(0, len(EICAR), 45)) + b"`\r\nend\r\n",
    # A text/plain body with a MIME structure inside: shown as an attachment by some clients.
    "hidden_in_text": HEAD + b"Content-Type: text/plain\r\n\r\nHello\r\n\r\n"
    + b"--hid\r\n" + EVIL_PART + b"--hid--\r\n",
}


def context(raw: bytes, policy: PolicySnapshot | None = None, runner: bool = True) -> MessageContext:
    """A MessageContext filled from raw bytes as the milter front would fill it."""
    ctx = MessageContext(ConnectionInfo(client_ip="192.0.2.1", helo="mx.sender.test"),
                         policy or PolicySnapshot.empty())
    ctx.mail_from = "alice@sender.test"
    sep = raw.find(b"\r\n\r\n")
    head, body = (raw[:sep], raw[sep + 4:]) if sep >= 0 else (raw, b"")
    lines: list[tuple[str, str]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and lines:
            n, v = lines[-1]
            lines[-1] = (n, v + "\r\n" + line.decode("utf-8", "surrogateescape"))
        else:
            n, _, v = line.decode("utf-8", "surrogateescape").partition(":")
            lines.append((n, v.removeprefix(" ")))
    for n, v in lines:
        ctx.add_header(n, v)
    ctx.body.write(body)
    if runner:
        ctx.runner = LayerRunner()
        ctx.runner.enter_stage(Stage.EOM)
    return ctx
