"""Lenient, ambiguity-aware reading of MIME header fields (RFC 2045, RFC 2047, RFC 2231, RFC 5322).

The stdlib parser gives one interpretation of a header. Mail clients and scanners disagree on
the corner cases (two ``boundary`` parameters, a boundary hidden in a comment, RFC 2231
continuations, a second ``Content-Type`` header), and attackers use exactly those to hide a
part from a scanner. The helpers here return *every* plausible reading so that the caller can
flag the disagreement and scan all of them.

Nothing here raises on malformed input.
"""

from __future__ import annotations

import binascii
import email.base64mime
import email.quoprimime
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import make_header
from email.message import Message

# One header block: "Name: value" lines with folded continuation lines (RFC 5322 2.2.3).
_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*)$")
# Any "boundary=" occurrence, also inside comments or quoted strings, also RFC 2231 forms.
_ANY_BOUNDARY = re.compile(
    r"""boundary(\*\d*\*?)?\s*=\s*("(?:[^"\\]|\\.)*"?|[^;\s()]+)""", re.IGNORECASE)
_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")
# The start of an encoded word as the standard library's email.header reads one: "=?", a
# charset up to the next "?", "q" or "b", "?" (decode_header below)
_WORD_START = re.compile(r"=\?([^?]*)\?([qQbB])\?")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    """The fields of one header block in order, unfolded; ``body_offset`` is where the body starts."""

    fields: tuple[tuple[str, str], ...]
    body_offset: int
    bad_lines: int  # lines that are neither a field nor a continuation (a lenient parser may skip them)

    def values(self, name: str) -> list[str]:
        low = name.lower()
        return [v for n, v in self.fields if n.lower() == low]


def split_header_block(data: bytes) -> HeaderBlock:
    """Split a part into its header fields and the offset of its body.

    The header ends at the first empty line (CRLF CRLF, LF LF or a mixture). A part that starts
    with an empty line has no headers (RFC 2046 5.1.1: default text/plain).
    """
    fields: list[tuple[str, str]] = []
    pos = 0
    bad = 0
    n = len(data)
    while pos < n:
        end = data.find(b"\n", pos)
        line_end = n if end < 0 else end + 1
        line = data[pos:line_end].rstrip(b"\r\n")
        if not line:
            return HeaderBlock(tuple(fields), line_end, bad)
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + " " + _dec(line.strip()))
        else:
            m = _HEADER_LINE.match(line)
            if m:
                fields.append((_dec(m.group(1)), _dec(m.group(2).strip())))
            else:
                bad += 1
                if not fields:
                    # Not a header block at all: the whole thing is body.
                    return HeaderBlock((), 0, bad)
        pos = line_end
    return HeaderBlock(tuple(fields), n, bad)


def _dec(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def strip_comments(value: str) -> str:
    """Remove RFC 5322 comments (nested ones too) outside quoted strings."""
    if "(" not in value and "\\" not in value:
        return value  # nothing to remove (most values: the loop below costs ~1 us per 30 characters)
    out: list[str] = []
    depth = 0
    in_quote = False
    i = 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            if depth == 0:
                out.append(value[i:i + 2])
            i += 2
            continue
        if in_quote:
            out.append(c)
            if c == '"':
                in_quote = False
        elif c == '"' and depth == 0:
            in_quote = True
            out.append(c)
        elif c == "(":
            depth += 1
        elif c == ")" and depth > 0:
            depth -= 1
        elif depth == 0:
            out.append(c)
        i += 1
    return "".join(out)


def media_type(value: str) -> str:
    """``type/subtype`` lower-cased, comments removed; "" when the value has none."""
    head = strip_comments(value).split(";", 1)[0].strip().lower()
    return head if re.fullmatch(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+", head) else ""


def split_params(value: str, *, keep_comments: bool = False) -> list[tuple[str, str]]:
    """All ``name=value`` parameters in order (duplicates kept), quotes removed.

    Semicolons inside quoted strings do not split. With ``keep_comments`` the comments are
    left in place, which is how a naive parser reads the header.
    """
    text = value if keep_comments else strip_comments(value)
    params: list[tuple[str, str]] = []
    # without a quoted string every semicolon splits (most values: the loop costs ~1 us per 30
    # characters)
    pieces = text.split(";") if '"' not in text else _split_outside_quotes(text)
    for piece in pieces[1:]:
        name, eq, val = piece.partition("=")
        if not eq:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = re.sub(r"\\(.)", r"\1", val[1:-1])
        elif val.startswith('"'):
            val = val[1:]
        params.append((name.strip().lower(), val))
    return params


def _split_outside_quotes(text: str) -> list[str]:
    """``text`` split at the semicolons outside quoted strings."""
    pieces: list[str] = []
    cur: list[str] = []
    in_quote = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and in_quote and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == '"':
            in_quote = not in_quote
        if c == ";" and not in_quote:
            pieces.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    pieces.append("".join(cur))
    return pieces


def rfc2231_params(params: list[tuple[str, str]]) -> dict[str, str]:
    """Reassemble RFC 2231 parameters (``name*=charset'lang'value``, ``name*0*=``...)."""
    sections: dict[str, dict[int, tuple[bool, str]]] = {}
    for name, val in params:
        m = re.fullmatch(r"([^*]+)\*(\d+)?(\*)?", name)
        if not m:
            continue
        base, num, star = m.group(1), m.group(2), m.group(3)
        if num is not None and len(num.lstrip("0")) > 9:
            continue  # no reader holds that many sections (and int() refuses 4,300+ digits)
        encoded = bool(star) or num is None
        sections.setdefault(base, {})[int(num or 0)] = (encoded, val)
    out: dict[str, str] = {}
    for base, secs in sections.items():
        charset = "utf-8"
        chunks: list[bytes] = []
        for idx in sorted(secs):
            encoded, val = secs[idx]
            if encoded:
                if idx == 0 and val.count("'") >= 2:
                    cs, _, rest = val.split("'", 2)
                    charset = cs or "utf-8"
                    val = rest
                chunks.append(urllib.parse.unquote_to_bytes(val.encode("utf-8", "surrogateescape")))
            else:
                chunks.append(val.encode("utf-8", "surrogateescape"))
        raw = b"".join(chunks)
        out[base] = bytes_as_text(raw, charset)
    return out


def boundary_param(part: Message) -> str | None:
    """A multipart's ``boundary`` parameter, or None where it has none or the standard library
    cannot read it (as :func:`content_charset`: mixed ``boundary*=``/``boundary*0=`` forms, a
    section number of 4,300+ digits, a NUL in its RFC 2231 charset)."""
    try:
        return part.get_boundary()
    except Exception:  # noqa: BLE001 - any of the above, whatever the Python version raises
        return None


def content_charset(part: Message, default: str) -> str:
    """A MIME part's ``charset`` parameter, or ``default`` where it has none or the standard
    library cannot read it (its RFC 2231 decoding raises on mixed ``charset*=``/``charset*0=``
    forms, a section number of 4,300+ digits, a charset that takes no "replace")."""
    try:
        return str(part.get_content_charset() or default)
    except Exception:  # noqa: BLE001 - any of the above, whatever the Python version raises
        return default


def bytes_as_text(data: bytes, charset: str | None) -> str:
    """``data`` read in ``charset`` (a message's word: any string), U+FFFD for bytes that do not
    decode; as UTF-8 where the charset cannot be used: unknown, a NUL in its name, a codec that
    takes no "replace" (idna: UnicodeError) or does not make text (base64: LookupError)."""
    try:
        return data.decode(charset or "utf-8", "replace")
    except (LookupError, ValueError, TypeError):
        return data.decode("utf-8", "replace")


def fix_8bit(value: str) -> str:
    """Raw 8-bit header bytes arrive as surrogate escapes: read them as UTF-8 (RFC 6532), or
    Latin-1 when they are not UTF-8."""
    if value.isascii() or not any("\udc80" <= c <= "\udcff" for c in value):
        return value  # isascii (in C) first: surrogates are never ASCII
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _split_words(line: str) -> list[str]:
    """``email.header.ecre.split(line)`` in linear time: text, then charset, encoding and
    encoded text of each word, then text, ... The standard library's expression reads a
    word's text lazily up to the next "?=", from every word start: a line of 100,000
    characters of starts with no "?=" after them took 2.9 s (quadratic). A word ends at the
    first "?=" after its text begins; when there is none, no later start can end either."""
    out: list[str] = []
    pos = 0
    while True:
        m = _WORD_START.search(line, pos)
        if m is None:
            break
        end = line.find("?=", m.end())
        if end < 0:
            break
        out += [line[pos:m.start()], m.group(1), m.group(2), line[m.end():end]]
        pos = end + 2
    out.append(line[pos:])
    return out


def _any_word(value: str) -> bool:
    """``email.header.ecre.search(value) is not None`` in linear time. Over the whole value a
    word's charset may run across a line break (its text may not): the standard library then
    decodes the value's lines even where none of them holds a word of its own. A start whose
    text meets no "?=" before its line ends fails, and so does every start whose text begins
    before that line end."""
    pos, dead_until = 0, -1
    while True:
        m = _WORD_START.search(value, pos)
        if m is None:
            return False
        pos = m.start() + 1
        if m.end() < dead_until:
            continue
        nl = value.find("\n", m.end())
        line_end = nl if nl >= 0 else len(value)
        if value.find("?=", m.end(), line_end + 1) >= 0:
            return True
        dead_until = line_end


def decode_header(value: str) -> list[tuple[bytes | str, str | None]]:
    """``email.header.decode_header(value)`` for a str, with the same result and errors
    (HeaderParseError for bad base64), in linear time (_split_words): the standard library's
    own took seconds on a hostile 100 KB Subject or file name. Pairs of (bytes, charset), or
    one (str, None) when there is no encoded word."""
    words: list[tuple[str, str | None, str | None]] = []
    for line in value.splitlines():
        parts = _split_words(line)
        first = parts[0].lstrip()
        if first:
            words.append((first, None, None))
        for i in range(1, len(parts), 4):
            words.append((parts[i + 2], parts[i + 1].lower(), parts[i].lower()))
            if parts[i + 3]:
                words.append((parts[i + 3], None, None))
    if not any(w[1] for w in words) and not _any_word(value):
        return [(value, None)]
    # white space between two encoded words is dropped (RFC 2047 section 6.2)
    kept = [w for n, w in enumerate(words)
            if not (0 < n < len(words) - 1 and w[1] is None and words[n - 1][1] and words[n + 1][1]
                    and w[0].isspace())]
    out: list[tuple[bytes | str, str | None]] = []
    last: bytes | None = None
    last_cs: str | None = None
    for text, cte, cs in kept:
        if cte is None:
            word = text.encode("raw-unicode-escape")
        elif cte == "q":
            word = email.quoprimime.header_decode(text).encode("raw-unicode-escape")
        else:
            try:  # missing padding added, as the standard library does
                word = email.base64mime.decode(text + "==="[:(4 - len(text) % 4) % 4])
            except binascii.Error as e:
                raise HeaderParseError("Base64 decoding error") from e
        if last is None:
            last, last_cs = word, cs
        elif cs != last_cs:
            out.append((last, last_cs))
            last, last_cs = word, cs
        else:
            last += (b" " + word) if cs is None else word
    out.append((last if last is not None else b"", last_cs))
    return out


def decode_text(value: str) -> str:
    """A header value with its encoded words decoded and joined as the standard library's
    make_header joins them (a space between words of different charsets); the value as it
    stands where they cannot be decoded (bad base64, a charset of raw 8-bit bytes or one no
    codec knows). Never raises: From screening and the message log read every message's."""
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # noqa: BLE001 - HeaderParseError, CharsetError, LookupError, UnicodeError, ...
        return value


_FOLD = re.compile(r"\r?\n(?=[ \t])")


def unfold(value: str) -> str:
    """RFC 5322 2.2.3's unfolding: each line break before white space goes, the white space stays."""
    return _FOLD.sub("", value) if "\n" in value else value


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words, also where RFC 2047 forbids them (quoted file names):
    clients decode them there, so filters must too. Raw 8-bit bytes are read first
    (:func:`fix_8bit`), and text outside the encoded words is kept as it is: ``Grüße
    =?utf-8?q?aus_Bonn?=`` reads ``Grüße aus Bonn`` (decoding that text as ASCII, as the
    standard library's make_header does, turned each ü into U+FFFD). Never raises."""
    value = fix_8bit(value)
    if "=?" not in value:
        return value
    if "\n" in value:
        # unfolded first (RFC 5322: the line break goes, the white space after it stays):
        # decode_header reads each line alone and drops the white space that starts one, so
        # "[SPAM]\n =?utf-8?q?Gr=C3=BC=C3=9Fe?=" read "[SPAM]Grüße"
        value = unfold(value)
    # decode_header hands the text between encoded words back as its raw-unicode-escape bytes:
    # Latin-1 bytes where every character is below U+0100 (then the inverse is exact),
    # \uXXXX escapes for the others
    plain = "latin-1" if value.isascii() or max(value) < "\u0100" else "raw-unicode-escape"
    try:
        out = []
        for chunk, cs in decode_header(value):
            if isinstance(chunk, bytes):
                out.append(chunk.decode(plain) if cs is None else bytes_as_text(chunk, cs))
            else:
                out.append(chunk)
        return "".join(out)
    except Exception:  # noqa: BLE001 - malformed words stay as they are
        return value


MAX_CANDIDATES = 50  # boundaries or file names one part's fields offer


def boundary_candidates(content_type_values: list[str]) -> list[str]:
    """Every boundary some parser could take from these Content-Type values, in order of
    likelihood: the first strict parameter first, then the others (last-wins parsers, RFC 2231
    forms, parameters hidden in comments or after stray semicolons). At most
    ``MAX_CANDIDATES``: parsers take the first or the last (a list's membership test over
    16,000 parameters took 2.7 s)."""
    seen: dict[str, None] = {}

    def add(b: str) -> None:
        if b and len(b) <= 200 and len(seen) < MAX_CANDIDATES:
            seen[b] = None

    # each value unfolded (RFC 5322 2.2.3), as mail readers read it: a boundary folded inside
    # its quotes is "simple boundary", not "simple\r\n boundary" (which no delimiter line can
    # hold: a parser that does not unfold sees no parts, less than the gateway reads)
    for value in map(unfold, content_type_values):
        params = split_params(value)
        for name, val in params:
            if name == "boundary":
                add(val)
        joined = rfc2231_params(params).get("boundary")
        if joined:
            add(joined)
        for name, val in split_params(value, keep_comments=True):
            if name == "boundary":
                add(val)
        for m in _ANY_BOUNDARY.finditer(value):
            v = m.group(2)
            if v.startswith('"'):
                v = v[1:-1] if v.endswith('"') and len(v) > 1 else v[1:]
            if not m.group(1):
                add(v)
    return list(seen)


def filename_candidates(disposition: list[str], content_type: list[str]) -> list[str]:
    """Every file name a client could show: Content-Disposition ``filename`` (RFC 2183/2231)
    and Content-Type ``name``, with encoded words decoded; duplicates removed."""
    names: list[str] = []
    for values, key in ((disposition, "filename"), (content_type, "name")):
        for value in values:
            params = split_params(value)
            for name, val in params:
                if name == key:
                    names.append(decode_words(val))
            joined = rfc2231_params(params).get(key)
            if joined:
                names.append(joined)
    out: dict[str, None] = {}  # (each once, in order; at most MAX_CANDIDATES)
    for n in names:
        n = n.strip()
        if n:
            out[n] = None
            if len(out) >= MAX_CANDIDATES:
                break
    return list(out)


def has_comment(value: str) -> bool:
    return bool(_COMMENT.search(_unquoted(value)))


def _unquoted(value: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', value)


def safe_filename(name: str, limit: int = 120) -> str:
    """A display- and log-safe version of a message-derived name: no path separators, no
    control or bidi-override characters, bounded length. Never use it as a path on its own."""
    name = unicodedata.normalize("NFC", name)
    cleaned = "".join(
        "_" if (unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") or c in "/\\\0") else c for c in name)
    cleaned = cleaned.strip().lstrip(".") or "unnamed"
    return cleaned[:limit]


_BARE_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]@]+@[^\s<>,;:\"()\[\]@]+")


# an unquoted display name holding an "@" before an angle address ("a@b.example <c@d.example>"):
# the stdlib parser reads it as a second address, and the angle address (where the mail is
# from) as the second one; SpamAssassin's parser and mail readers take it as the name
# (one run of plain characters before the "<", no nested repeats: linear on hostile headers)
_AT_PHRASE = re.compile(r'(^|,)([^,"<>()]++)(<[^<>]*>)')


def _quote_at_phrases(value: str) -> str:
    if "@" not in value or "<" not in value:
        return value

    def quote(m: re.Match[str]) -> str:
        phrase = m.group(2)
        if "@" not in phrase or not phrase.strip():
            return m.group(0)
        lead = phrase[:len(phrase) - len(phrase.lstrip())]
        return f'{m.group(1)}{lead}"{phrase.strip()}" {m.group(3)}'
    return _AT_PHRASE.sub(quote, value)


# The common forms, read without the stdlib parser (its character-by-character scan costs
# 20-60 us a header, and the anti-spam rules alone ask for From, To, Cc, Reply-To and the senders
# of every message): "local@domain", "Name Words <local@domain>" and '"quoted name"
# <local@domain>', several of them separated by commas, with dot-atom addresses and plain
# words in the names. Anything else (comments, dots or "@" in a name, quoted local parts, domain
# literals, groups, folded lines) is left to getaddresses; these forms give what it gives.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDR = rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_PLAIN_MAILBOX = re.compile(rf'[ \t]*(?:({_PLAIN_ADDR})|(?:({_ATEXT}(?:[ \t]+{_ATEXT})*)|"([^"\\\r\n]*)")?'
                            rf'[ \t]*<({_PLAIN_ADDR})>)[ \t]*')
_NOT_PLAIN = re.compile(r'[()\\;:\[\]\r\n]')  # (a quote may hold a comma: checked piece by piece)


def _plain_addresses(value: str) -> list[tuple[str, str]] | None:
    """The mailboxes of a value written in the common forms above, None otherwise."""
    if _NOT_PLAIN.search(value) is not None or value.count('"') > 2:
        return None
    out: list[tuple[str, str]] = []
    for piece in value.split(","):
        m = _PLAIN_MAILBOX.fullmatch(piece)
        if m is None:
            return None
        bare, words, quoted, angle = m.groups()
        if bare is not None:
            out.append(("", bare))
        else:
            out.append((" ".join(words.split()) if words is not None else quoted or "", angle))
    return out


def _has_strict_mode() -> bool:
    """Whether this interpreter's ``getaddresses`` has the ``strict`` parameter (the fix of
    CVE-2023-27043: CPython 3.11.10 and later, and Debian 12's 3.11.2 from its security
    updates), which turns a malformed header into ``('', '')`` instead of guessing."""
    import inspect
    from email.utils import getaddresses

    return "strict" in inspect.signature(getaddresses).parameters


_STRICT_MODE = _has_strict_mode()
_LEGACY_READING: dict[str, bool] = {"strict": False} if _STRICT_MODE else {}


def addresses(values: list[str], strict: bool = True) -> list[tuple[str, str]]:
    """``email.utils.getaddresses`` that never raises: on a header the stdlib parser cannot
    take (thousands of encoded words in one To: exhaust its recursion), the bare
    ``local@domain`` tokens of that value, without display names.

    ``strict=False`` reads a malformed header as the parser before CVE-2023-27043's fix did, on
    every interpreter: the anti-spam view, whose rules were matched against SpamAssassin's
    with that reading (``From: a@[1], [b]@example.com`` gives its pieces). The default is the
    interpreter's strict reading where it has one (Debian 12's Python does): the layers that
    decide on a sender's domain (DMARC, SPF's From check, screening, signing) then find no
    address in such a header rather than a guessed one."""
    from email.utils import getaddresses

    legacy = {} if strict else _LEGACY_READING
    out: list[tuple[str, str]] = []
    for v in values:
        plain = _plain_addresses(v) if isinstance(v, str) else None
        if plain is not None:
            out += plain
            continue
        try:
            out += getaddresses([_quote_at_phrases(v)], **legacy)
        except (RecursionError, ValueError, TypeError, IndexError):
            out += [("", a) for a in _BARE_ADDRESS.findall(str(v))]
    return out


def address(value: str) -> str:
    """The first address of a header value (``email.utils.parseaddr``'s), '' when none;
    never raises."""
    pairs = addresses([value])
    return next((a for _, a in pairs if a), "")
