"""Every other reading of an ambiguous MIME message (RFC 2045/2046 and what real clients do).

Scanners have been bypassed many times by messages that two parsers read differently: two
``boundary`` parameters (first wins in one parser, last in another), a boundary hidden in a
comment or in an RFC 2231 continuation, a second ``Content-Type`` header, a part after the
close delimiter, a base64 body labelled 7bit. Rather than guess which reading the recipient's
client will use, we take them all: this lenient walker splits every multipart on every
candidate boundary (declared under any reading, or merely present as a delimiter line followed
by MIME headers), decodes every leaf under every transfer encoding it declares (and as base64
when it looks like base64), and returns the decoded payloads. Antivirus scans the union.

The walk is bounded (nodes, depth, bytes, time); when a bound is hit the result says so
(``complete=False``) and antivirus treats the message as unscannable.
"""

from __future__ import annotations

import base64
import bisect
import binascii
import quopri
import re
import time
from dataclasses import dataclass, field

from gateway_milter.mime import headers as H

MAX_NODES = 600
MAX_DEPTH = 25
MAX_PAYLOADS = 500
MAX_TOTAL_BYTES = 64 * 1024 * 1024
MAX_SECONDS = 3.0

# a "--" at the start of a line ("^--" written with the literal first, so that the engine skips
# from one "--" to the next instead of trying every line start: 0.01 instead of 0.06 ms per 5 KB)
_DELIM = re.compile(rb"--(?<![^\n]--)([^\r\n]{1,200}?)[ \t]*\r?$", re.MULTILINE)
_HEADERISH = re.compile(rb"^[!-9;-~]+[ \t]*:", re.MULTILINE)
_B64_LINE = re.compile(rb"^[A-Za-z0-9+/=]{16,}\r?$", re.MULTILINE)
_B64_RUN = re.compile(rb"(?:^[A-Za-z0-9+/=]{16,}[ \t]*\r?\n){2,}", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class AltPart:
    """One payload of another reading, with the names and type its header block declares."""

    payload: bytes
    names: tuple[str, ...] = ()
    declared_type: str = ""


@dataclass(slots=True)
class Alternatives:
    parts: list[AltPart] = field(default_factory=list)
    complete: bool = True
    nodes: int = 0

    @property
    def payloads(self) -> list[bytes]:
        return [p.payload for p in self.parts]


def hidden_delimiters(raw: bytes, declared: list[str]) -> list[str]:
    """Delimiter-looking lines (``--token`` followed by MIME header lines) whose token is not
    a declared boundary: a lenient client may show a part there that a strict parser hides."""
    known = {b.encode("utf-8", "surrogateescape") for b in declared}
    out: dict[str, None] = {}  # (a dict, not a list: 80,000 distinct tokens were 80,000 scans of it)
    for tok in _delimiter_tokens(raw):
        if tok not in known:
            out[tok.decode("utf-8", "replace")] = None
            if len(out) >= 20:
                break
    return list(out)


def _delimiter_tokens(data: bytes) -> list[bytes]:
    toks: dict[bytes, None] = {}  # (in order, each once: a list's membership test was quadratic)
    for m in _DELIM.finditer(data):
        tok = m.group(1)
        if tok.endswith(b"--"):
            tok = tok[:-2]
        if not tok or tok in toks or tok.strip(b"-") == b"":
            continue
        nxt = data[m.end():m.end() + 400].lstrip(b"\r\n")
        first = nxt.split(b"\n", 1)[0]
        if _HEADERISH.match(first) and first.lower().startswith(b"content-"):
            toks[tok] = None
    return list(toks)


class _Walker:
    def __init__(self, known: set[bytes]) -> None:
        self.known = known
        self.seen: set[bytes] = set()
        self.out = Alternatives()
        self.total = 0
        self.deadline = time.monotonic() + MAX_SECONDS

    def add(self, payload: bytes, names: tuple[str, ...] = (), declared: str = "") -> None:
        if not payload or payload in self.seen:
            return
        self.seen.add(payload)
        if payload in self.known:
            return
        if len(self.out.parts) >= MAX_PAYLOADS or self.total + len(payload) > MAX_TOTAL_BYTES:
            self.out.complete = False
            return
        self.total += len(payload)
        self.out.parts.append(AltPart(payload, names, declared))

    def node(self, data: bytes, depth: int) -> None:
        self.out.nodes += 1
        if self.out.nodes > MAX_NODES or depth > MAX_DEPTH or time.monotonic() > self.deadline:
            self.out.complete = False
            return
        hb = H.split_header_block(data)
        body = data[hb.body_offset:]
        cts = hb.values("content-type")
        types = {H.media_type(v) for v in cts}
        boundaries = dict.fromkeys(H.boundary_candidates(cts) if any(t.startswith("multipart/") for t in types)
                                   else ())
        # delimiter lines present in this body count too: a lenient client may split on them
        for tok in _delimiter_tokens(body):
            boundaries.setdefault(tok.decode("utf-8", "surrogateescape"), None)
        split_any = False
        # every delimiter line by its token, found once: each boundary's split reads its own
        # lines (a scan of all of them per boundary was quadratic in distinct tokens)
        lines = _delimiter_lines(body) if boundaries else {}
        for b in boundaries:
            if time.monotonic() > self.deadline:
                self.out.complete = False
                return
            subparts = _split(body, lines.get(b.encode("utf-8", "surrogateescape"), []))
            if subparts:
                split_any = True
                for sp in subparts:
                    self.node(sp, depth + 1)
        if any(t == "message/rfc822" for t in types):
            self.node(body, depth + 1)
        if not split_any or any(t and not t.startswith("multipart/") for t in types):
            names = tuple(H.filename_candidates(hb.values("content-disposition"), cts))
            declared = next((t for t in types if t and not t.startswith("multipart/")), "")
            decodings = _decodings(body, hb.values("content-transfer-encoding"))
            for payload in decodings:
                self.add(payload, names, declared)
            for text in decodings[:2]:
                for name, data in uuencoded_files(text):
                    self.add(data, (name,), "application/octet-stream")


def _delimiter_lines(body: bytes) -> dict[bytes, list[tuple[int, int]]]:
    """(start, end) of every line starting with "--", by its token (without a trailing "--")."""
    out: dict[bytes, list[tuple[int, int]]] = {}
    for m in _DELIM.finditer(body):
        tok = m.group(1)
        out.setdefault(tok[:-2] if tok.endswith(b"--") else tok, []).append((m.start(), m.end()))
    return out


def _split(body: bytes, marks: list[tuple[int, int]]) -> list[bytes]:
    """Parts between one boundary's delimiter lines (``marks``); close delimiters separate too
    (parts after the end count)."""
    if not marks:
        return []
    out = []
    for (_, a_end), nxt in zip(marks, [*marks[1:], None], strict=True):
        start = a_end
        if body[start:start + 2] == b"\r\n":
            start += 2
        elif body[start:start + 1] == b"\n":
            start += 1
        end = nxt[0] if nxt is not None else len(body)
        chunk = body[start:end]
        if nxt is not None:
            # the line break before a delimiter belongs to the delimiter (RFC 2046 5.1.1)
            chunk = chunk[:-2] if chunk.endswith(b"\r\n") else chunk[:-1] if chunk.endswith(b"\n") else chunk
        if chunk.strip():
            out.append(chunk)
    return out


def _decodings(body: bytes, ctes: list[str]) -> list[bytes]:
    encodings = {H.strip_comments(v).strip().lower() for v in ctes}
    declared_b64 = any("base64" in e for e in encodings)
    declared_qp = any("quoted" in e for e in encodings)
    looks_b64 = _looks_base64(body)
    out = []
    # An encoded body as such is already in the raw-message scan: keep it only when it is not
    # what its label says (binary labelled base64, or no transfer encoding at all).
    if not (declared_b64 and looks_b64) and not declared_qp:
        out.append(body)
    if declared_b64 or looks_b64:
        out.append(lenient_base64(body))
    if declared_qp:
        out.append(quopri.decodestring(body))
    if not looks_b64:
        for m in _B64_RUN.finditer(body):
            out.append(lenient_base64(m.group(0)))
    return [o for o in out if o]


_UU_BEGIN = re.compile(rb"^begin(?:-base64)? [0-7]{3,4} ([^\r\n]{1,255})\r?$", re.M)
_UU_END = re.compile(rb"^(?:end|====)[ \t]*\r?$", re.M)


def uuencoded_files(body: bytes) -> list[tuple[str, bytes]]:
    """Files uuencoded inside a text body (``begin 644 name`` ... ``end``): many clients show
    them as attachments although MIME knows nothing of them."""
    out: list[tuple[str, bytes]] = []
    if b"begin " not in body:
        return out
    # every end line found once; a begin line takes the first end after it, and the begin lines
    # inside its block are its data, not files of their own (each begin searched the rest of the
    # body for its end, and decoded up to it: a 525 KB message of begin lines took 48 s)
    ends = list(_UU_END.finditer(body))
    starts = [e.start() for e in ends]
    taken = 0
    for m in _UU_BEGIN.finditer(body):
        if m.start() < taken:
            continue
        i = bisect.bisect_left(starts, m.end())
        if i == len(ends):
            break  # (no end after this begin: none after the later ones either)
        end = ends[i]
        taken = end.end()
        name = m.group(1).decode("utf-8", "replace").strip()
        data = bytearray()
        for line in body[m.end():end.start()].splitlines():
            if not line.strip():
                continue
            try:
                data += binascii.a2b_uu(line)
            except binascii.Error:
                # some encoders write a few garbage bytes at the end of a line
                try:
                    nbytes = (((line[0] - 32) & 63) * 4 + 5) // 3
                    data += binascii.a2b_uu(line[:nbytes])
                except (binascii.Error, IndexError):
                    break
        if data:
            out.append((name, bytes(data)))
        if len(out) >= 50:
            break
    return out


def _looks_base64(body: bytes) -> bool:
    lines = [ln for ln in body.splitlines() if ln.strip()]
    return bool(lines) and sum(1 for ln in lines if _B64_LINE.match(ln)) >= max(1, len(lines) * 3 // 4)


def lenient_base64(data: bytes) -> bytes:
    """Decode base64 the way forgiving clients do: ignore non-alphabet bytes, stop at the
    first padding, repair missing padding."""
    clean = re.sub(rb"[^A-Za-z0-9+/=]", b"", data)
    clean = clean.split(b"=", 1)[0]
    clean = clean[: len(clean) - len(clean) % 4 if len(clean) % 4 == 1 else len(clean)]
    clean += b"=" * (-len(clean) % 4)
    try:
        return base64.b64decode(clean)
    except (binascii.Error, ValueError):
        return b""


_B64_SPACE = re.compile(rb"\s+")
_B64_CLEAN = re.compile(rb"[A-Za-z0-9+/=]{2,}={0,2}")
_B64_INNER_PAD = re.compile(rb"=+(?!=*$)")
_B64_NOT_ALPHABET = re.compile(rb"[^A-Za-z0-9+/=]")


def sa_base64(data: bytes) -> bytes:
    """Base64 decoded as SpamAssassin's Util::base64_decode decodes it, whatever the input: a
    clean text whose length is a multiple of four as it stands (padding inside it read as
    "A"); else every byte outside the alphabet dropped, the padding at the end dropped, one
    inside read as "/" (its uudecode translation), a last lone character dropped, and the rest
    decoded, a short last group giving its one or two bytes."""
    s = _B64_SPACE.sub(b"", data)
    if len(s) % 4 == 0 and _B64_CLEAN.fullmatch(s):
        s = _B64_INNER_PAD.sub(lambda x: b"A" * len(x.group()), s)
    else:
        s = _B64_NOT_ALPHABET.sub(b"", s).rstrip(b"=").replace(b"=", b"/")
        if len(s) % 4 == 1:
            s = s[:-1]
        s += b"=" * (-len(s) % 4)
    try:
        return binascii.a2b_base64(s)
    except (binascii.Error, ValueError):
        return b""


def alternative_payloads(raw: bytes, known: set[bytes]) -> Alternatives:
    """Decoded content under every other reading of ``raw`` (payloads in ``known`` left out)."""
    w = _Walker(known)
    try:
        w.node(raw, 0)
    except Exception:  # noqa: BLE001 - never raise on hostile input: an incomplete walk is unscannable
        w.out.complete = False
    return w.out
