"""The flags SpamAssassin's message parser sets on a message (Mail::SpamAssassin::Message, 4.0.1),
which MIMEEval's ``check_msg_parse_flags`` reads:

- ``truncated_header``: a header field name over 256 octets or a value over 8,192 (``HEAD_LONG``);
- ``missing_mime_headers``: the line after a MIME boundary is no header field
  (``T_TVD_MIME_NO_HEADERS``);
- ``missing_mime_head_body_separator``: a MIME part's header section ends at a line that is
  neither a field, a continuation nor empty (``MISSING_MIME_HB_SEP``);
- ``mime_epilogue_exists``: text other than white space and dots after a closing boundary
  (``T_TVD_MIME_EPI``).

``missing_head_body_separator`` (``MISSING_HB_SEP``) is computed too but not offered to the rules:
the MTA parses the message's header section before the milter sees it and hands over fields
and body apart, so whether the original had the empty line between them is not known here.

The walk follows the Perl code line by line (header section, then a queue of parts: multipart
bodies split at their boundaries, ``message/rfc822`` parts decoded and parsed as messages), on
the message's octets, and sees only what decides a flag: no part is decoded but embedded
messages, nothing is rendered. Bounds: SpamAssassin's (20 levels, 1,000 parts a multipart)."""

from __future__ import annotations

import quopri
import re
from collections import deque

from gateway_milter.mime.ambiguity import lenient_base64

MAX_HEADER_KEY_LENGTH = 256
MAX_HEADER_VALUE_LENGTH = 8192
SUBPARSE = 20  # MIME levels parsed (Message->new's default)
MAX_PARTS = 1000  # parts of one multipart

# the flags the rules may read (not missing_head_body_separator: see above)
OFFERED = frozenset({"truncated_header", "missing_mime_headers", "missing_mime_head_body_separator",
                     "mime_epilogue_exists"})

_FIELD = re.compile(r"[\x21-\x39\x3b-\x7e]+[ \t]*:")  # a field name, WSP allowed before the colon
_FIELD_STRICT = re.compile(r"[\x21-\x39\x3b-\x7e]+:")  # after a boundary: no WSP before the colon
_BOUNDARY = re.compile(r"""\bboundary\s*=\s*("[^"]+|[^\s";]+(?=[\s;]|$))""", re.I)
_PART_FIELD = re.compile(r":\s*")
_BLANK_OR_CR = re.compile(r"\r?\n?")
_CT_PARAMS = re.compile(r";.*$", re.S)
_CT_TYPE = re.compile(r"^([^/]+(?:/[^/\s]*)?).*$", re.S)  # only something/something
_CT_TEXT = re.compile(r"text\b")
_CT_KEEP = re.compile(r"text/(?:x-vcard|calendar|html)\n?")
_CT_DROP = re.compile(r'[\x00-\x20\x7f-\xff"(),:-?@\[-\]]')  # what parse_content_type deletes


def _value(v: str) -> str:
    """A field's value as Node::header gives it: folds unfolded, trimmed, no line breaks."""
    return re.sub(r"\r?\n", "", re.sub(r"\n[ \t]+", " ", v).strip(" \t\n\r\f\v"))


def _lines(text: str) -> list[str]:
    """Perl's ``split /^/m``: lines with their newline, the last one without if it has none."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def content_type(values: list[str]) -> tuple[str, str | None]:
    """Util::parse_content_type: the last Content-Type's type and boundary."""
    ct = values[-1] if values and values[-1] else "text/plain; charset=us-ascii"
    m = _BOUNDARY.search(ct)
    boundary = m.group(1).replace('"', "") if m else None
    ct = _CT_TYPE.sub(r"\1", _CT_PARAMS.sub("", ct.lstrip())).lower()
    if not ct or (ct.startswith("text") and _CT_TEXT.match(ct) and not _CT_KEEP.fullmatch(ct)):
        ct = "text/plain"
    return _CT_DROP.sub("", ct), boundary


def field_type(values: list[str]) -> str:
    """The type of these Content-Type values as written (folded, untrimmed), as
    Util::parse_content_type reads the last one."""
    return content_type([_value(v) for v in values])[0]


class _Message:
    """A message's header section parsed as Message->new parses it: the flags it sets, the
    fields read later (Content-Type, Content-Transfer-Encoding), its type and boundary, and the
    lines after the header section where they are parsed (multipart and message types)."""

    def __init__(self, text: str) -> None:
        self.flags: set[str] = set()
        self.fields: dict[str, list[str]] = {}  # the fields read later: Content-Type, Content-Transfer-Encoding
        lines = _lines(text)
        if not lines:
            lines = [""]
        crlf = "\r\n" in lines[0] or "\r\n" in lines[-1]
        ending = "\r\n" if crlf else "\n"
        i, n = 0, len(lines)
        errors = 0
        parts: list[str] | None = None  # the current field's lines (joined once: not once per line)
        while True:
            eof = i >= n
            current = ending if eof else lines[i]
            if not eof:
                i += 1
            # (spamass-milter's lone LFs made CRLF; a line holds one line break at most, at its end)
            if crlf and current[-1:] == "\n" and current[-2:-1] != "\r":
                current = current[:-1] + "\r\n"
            if current[:1] in (" ", "\t"):
                if parts is None:
                    parts = [current]
                else:
                    parts.append(current)
                continue
            # a field: only a long one can be truncated, only Content-* ones are read later
            header = "".join(parts) if parts is not None else None
            if header is not None and (len(header) > MAX_HEADER_KEY_LENGTH or header[:8].lower() == "content-"):
                self._field(header, crlf)
            if current == ending:
                if eof:
                    self.flags.add("missing_head_body_separator")
                break
            if current.startswith("--"):  # a MIME boundary: no separator, the body starts here
                self.flags.add("missing_head_body_separator")
                i -= 1
                break
            if not _FIELD.match(current):
                errors += 1
                if errors > 3:
                    self.flags.add("missing_head_body_separator")
                    i -= 1
                    break
            parts = [current]
        self.type, self.boundary = content_type([_value(v) for v in self.fields.get("content-type", [])])
        body: list[str] = []
        if self.type.startswith(("multipart/", "message/")):  # the only bodies parse_flags reads
            body = lines[i:]
            if crlf:
                body = [ln[:-2] + "\n" if ln.endswith("\r\n") else ln for ln in body]
            # bug 6845: a multipart body that starts with neither an empty line nor its boundary
            if (self.type.startswith("multipart/") and len(body) > 1 and body[0].strip()
                    and (self.boundary is None or not body[0].startswith("--" + self.boundary))):
                body.insert(0, "\n")
        self.body = body

    def _field(self, header: str, crlf: bool) -> None:
        key, sep, value = header.partition(":")
        if not sep:  # not a field ("foo:bar"): skipped
            return
        if crlf:
            value = value.replace("\r\n", "\n")
        key = key.rstrip(" \t")
        if len(key) > MAX_HEADER_KEY_LENGTH:
            key = key[:MAX_HEADER_KEY_LENGTH]
            self.flags.add("truncated_header")
        if len(value) > MAX_HEADER_VALUE_LENGTH:
            value = value[:MAX_HEADER_VALUE_LENGTH]
            self.flags.add("truncated_header")
        key = key.lower()
        if key in ("content-type", "content-transfer-encoding"):
            self.fields.setdefault(key, []).append(value)

    def as_part(self) -> _Part:
        """The message as a part of the parse queue (its transfer encoding, for message/rfc822)."""
        p = _Part()
        p.fields = self.fields
        p.cte = _value(self.fields["content-transfer-encoding"][-1]) if "content-transfer-encoding" in self.fields else ""
        return p


class _Part:
    __slots__ = ("fields", "cte")

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}
        self.cte = ""


def _decode(part: _Part, lines: list[str]) -> str:
    """An embedded message's text as Node::decode gives it: base64 or quoted-printable when the
    transfer encoding is exactly that (lower-cased), the lines as they are otherwise."""
    data = "".join(lines)
    cte = part.cte.lower()
    if cte == "base64":
        return lenient_base64(data.encode("latin-1", "replace")).decode("latin-1")
    if cte == "quoted-printable":
        return quopri.decodestring(data.encode("latin-1", "replace")).decode("latin-1").replace("\r\n", "\n")
    return data


# A header section of well-formed fields only (each a name, optional white space, a colon, then
# its continuation lines) up to its empty line, LF or CRLF throughout: SpamAssassin's loop reads
# exactly these fields and stops at that line, so it sets no flag but truncated_header.
_PLAIN_HEADER = {
    "\n": re.compile(r"(?:[\x21-\x39\x3b-\x7e]+[ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*)*\n"),
    "\r\n": re.compile(r"(?:[\x21-\x39\x3b-\x7e]+[ \t]*:[^\n]*\r\n(?:[ \t][^\n]*\r\n)*)*\r\n"),
}
_CONTENT_TYPE = re.compile(r"content-type[ \t]*:([^\n]*\n(?:[ \t][^\n]*\n)*)", re.I)


def _plain(full: str) -> bool:
    """True when the message's flags are none at all (but missing_head_body_separator, which
    is not offered): a header section of well-formed fields, none longer than 256 characters
    (so none is truncated), and a Content-Type that is neither multipart nor message (so no
    part is parsed). Found by a few scans instead of the walk; anything else takes the walk."""
    # SpamAssassin's line ending: CRLF when the first or the last line has one
    crlf = "\r\n" in full[:full.find("\n") + 1] or "\r\n" in full[full.rfind("\n", 0, len(full) - 1) + 1:]
    m = _PLAIN_HEADER["\r\n" if crlf else "\n"].match(full)
    if m is None:
        return False
    head = full[:m.end()]
    lines = head.split("\n")
    if max(map(len, lines)) >= MAX_HEADER_KEY_LENGTH:
        return False
    if "\n " in head or "\n\t" in head:  # folded fields: a field with its continuations
        size = 0
        for ln in lines:
            if ln[:1] in (" ", "\t"):
                size += len(ln) + 1
            else:
                if size > MAX_HEADER_KEY_LENGTH:
                    return False
                size = len(ln) + 1
    values = []  # the Content-Type fields' values, in order (SpamAssassin reads the last)
    low, at = head.lower(), -1
    while (at := low.find("content-type", at + 1)) >= 0:
        if at == 0 or head[at - 1] == "\n":
            ct = _CONTENT_TYPE.match(head, at)
            if ct is not None:
                values.append(_value(ct.group(1).replace("\r\n", "\n") if crlf else ct.group(1)))
    ctype, _b = content_type(values)
    return not ctype.startswith(("multipart/", "message/"))


def parse_flags(full: str) -> frozenset[str]:
    """The OFFERED flags SpamAssassin's parser sets on the message ``full`` (its octets, one
    character each)."""
    if _plain(full):
        return frozenset()
    return walk_flags(full) & OFFERED


def walk_flags(full: str) -> frozenset[str]:
    """Every flag the walk sets, missing_head_body_separator too (the tests compare it with
    SpamAssassin's parser, and parse_flags with it)."""
    top = _Message(full)
    flags = set(top.flags)
    queue: deque[tuple[str, str | None, list[str], int, _Part | None]] = deque(
        [(top.type, top.boundary, top.body, SUBPARSE, top.as_part())])
    while queue:
        ctype, boundary, body, subparse, part = queue.popleft()
        if ctype.startswith("multipart/") and boundary is not None and subparse > 0:
            _multipart(boundary, body, subparse - 1, flags, queue)
        elif part is not None and ctype in ("message/rfc822", "message/global") and subparse > 0:
            decoded = _decode(part, body)
            if decoded:  # parsed as a message: its own header flags stay its own, its parts ours
                sub = _Message(decoded)
                queue.append((sub.type, sub.boundary, sub.body, subparse - 1, sub.as_part()))
    return frozenset(flags)


def _multipart(boundary: str, body: list[str], subparse: int, flags: set[str],
               queue: deque[tuple[str, str | None, list[str], int, _Part | None]]) -> None:
    opening = "--" + boundary
    for n, line in enumerate(body):
        if line.startswith(opening) and not line[len(opening):].strip():
            if n + 1 < len(body) and not _FIELD_STRICT.match(body[n + 1]):
                flags.add("missing_mime_headers")
            body = body[n + 1:]
            break
    end = re.compile(r"--" + re.escape(boundary) + r"(--)?\s*\Z")
    nested = False
    in_body = False
    header: str | None = None
    part = _Part()
    part_lines: list[str] = []
    remaining = len(body)
    count = 0
    for line in body:
        m = end.match(line) if line.startswith("--") else None
        found_end = m is not None
        found_last = found_end and m.group(1) is not None  # type: ignore[union-attr]
        if found_end and nested:
            found_end = False
            if found_last:
                nested = False
        remaining -= 1
        if remaining == 0 or found_end:
            if not found_end:
                part_lines.append(line)
            elif part_lines:  # the line break before a boundary belongs to the boundary (RFC 2046)
                last = part_lines[-1].removesuffix("\n")
                if last:
                    part_lines[-1] = last
                else:
                    part_lines.pop()
            ptype, p_boundary = content_type([_value(v) for v in part.fields.get("content-type", [])])
            queue.append((ptype, p_boundary or boundary, part_lines, subparse, part))
            if found_end:
                if found_last:
                    break
                if remaining and not _FIELD_STRICT.match(body[len(body) - remaining]):
                    flags.add("missing_mime_headers")
            count += 1
            if count == MAX_PARTS:
                return
            in_body, header, part, part_lines = False, None, _Part(), []
            continue
        if not in_body:
            if _FIELD.match(line):
                if header is not None:
                    _add_field(part, header)
                header = line
                continue
            if line[:1] in (" ", "\t") and header:
                header += line
                continue
            if header:
                key = _add_field(part, header)
                if key == "content-type":
                    _t, inner = content_type([_value(v) for v in part.fields["content-type"]])
                    if inner is not None and inner == boundary:
                        nested = True
            in_body = True
            if _BLANK_OR_CR.fullmatch(line):
                continue
            flags.add("missing_mime_head_body_separator")
        part_lines.append(line)
    # an epilogue: after the closing boundary, a line with more than white space and dots
    if remaining:
        for line in body[len(body) - remaining:]:
            if re.search(r"[^\s.]", line):
                flags.add("mime_epilogue_exists")
                break


def _add_field(part: _Part, header: str) -> str:
    r"""A part's field as _parse_multipart splits it (``split /:\s*/, $header, 2``)."""
    pieces = _PART_FIELD.split(header, 1)
    key, value = pieces[0].lower(), (pieces[1] if len(pieces) > 1 else "")
    part.fields.setdefault(key, []).append(value)
    if key == "content-transfer-encoding":
        part.cte = value.strip()
    return key
