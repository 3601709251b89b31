"""Split a raw RFC 5322 message into the (name, value) header list and body, as an MTA hands
them to a milter. Tolerant: bare LF, a missing blank line, or header lines without a colon never
raise."""

from __future__ import annotations

import mailbox
import re
from collections.abc import Iterator
from pathlib import Path

_HDR = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$", re.S)


def split_message(raw: bytes) -> tuple[list[tuple[str, str]], bytes]:
    m = re.search(rb"\r?\n\r?\n", raw)
    if raw.startswith((b"\r\n", b"\n")):
        head, body = b"", raw.split(b"\n", 1)[1]
    elif m:
        head, body = raw[: m.start()], raw[m.end():]
    else:
        head, body = raw, b""
    headers: list[tuple[str, str]] = []
    lines = re.split(rb"\r?\n", head) if head else []
    for line in lines:
        if line[:1] in (b" ", b"\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + "\r\n" + line.decode("utf-8", "surrogateescape"))
            continue
        hm = _HDR.match(line)
        if hm:
            headers.append((hm.group(1).decode("ascii"), hm.group(2).lstrip(b" \t").decode("utf-8", "surrogateescape")))
        # a line that is neither a header nor a continuation is dropped, as MTAs do
    body = re.sub(rb"(?<!\r)\n", b"\r\n", body)
    return headers, body


def iter_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """(label, raw bytes) for an .eml file, every file of a directory (maildir cur/new too),
    or every message of an mbox file."""
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                yield from iter_messages(p)
        return
    with open(path, "rb") as f:
        head = f.read(5)
    if head == b"From ":
        for i, msg in enumerate(mailbox.mbox(str(path), create=False)):
            yield f"{path}#{i + 1}", msg.as_bytes()
        return
    yield str(path), path.read_bytes()
