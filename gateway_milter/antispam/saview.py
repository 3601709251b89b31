"""The message as SpamAssassin's rules see it, built once per message and shared by the rules
and Bayes layers: decoded headers (RFC 2047), the rendered body (subject first, paragraphs with
runs of white space collapsed), the raw decoded body, the full message and the URIs.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any

from gateway_milter.antispam.htmltext import HtmlFacts, render_html
from gateway_milter.antispam.parseflags import MAX_HEADER_KEY_LENGTH, MAX_HEADER_VALUE_LENGTH, field_type
from gateway_milter.antispam.perlre import octets
from gateway_milter.antispam.relays import ORIGINATING_IP_HEADERS, RelayPath, TrustConfig, relay_path
from gateway_milter.antispam.urls import bounded, find_urls, normalize_link
from gateway_milter.antispam.saaddr import parse_addresses
from gateway_milter.mime.headers import boundary_param

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext
    from gateway_milter.mime.view import MimePart, MimeView
    from gateway_milter.policy.snapshot import PolicySnapshot

MAX_TEXT = 2_000_000  # characters of decoded text considered (hostile-input bound)
# SpamAssassin 4 defaults: body_part_scan_size 50000, rawbody_part_scan_size 500000 (per part)
BODY_PART_SCAN = 50_000
RAWBODY_PART_SCAN = 500_000
MAX_LINE = 8192  # rawbody lines are cut here (SpamAssassin splits them into short paragraphs)
MAX_ALL_HEADERS = 65536  # SpamAssassin's MAX_HEADER_LENGTH: what ALL holds at most
MAX_BODY_LINE = 2048  # SpamAssassin's MAX_BODY_LINE_LENGTH: body rules see lines of at most this
# Pseudo-headers SpamAssassin synthesises that we do not build: the rules on them are listed as
# unsupported rather than silently never matching.
UNSUPPORTED_HEADERS = ("X-Spam-DCC", "X-Spam-Pyzor", "X-Spam-Languages", "X-Languages",
                       "X-Spam-Country", "X-Relay-Countries", "X-Spam-ASN", "X-ASN", "X-Spam-Status",
                       "X-Spam-Flag", "X-Spam-Level", "X-Spam-Score", "X-Spam-Report")
# The trust path's pseudo-headers (relays.py), built on the first rule that reads one.
RELAY_HEADERS = {"x-spam-relays-trusted": "trusted", "x-spam-relays-untrusted": "untrusted",
                 "x-spam-relays-internal": "internal", "x-spam-relays-external": "external"}
# SpamAssassin's header ranges split at the trust boundary: (start at the Received header after
# the last trusted/internal relay) or (end with it)
RANGE_HEADERS = {"ALL-TRUSTED": ("trusted", False), "ALL-INTERNAL": ("internal", False),
                 "ALL-UNTRUSTED": ("trusted", True), "ALL-EXTERNAL": ("internal", True)}
# Perl's \s on a decoded (character) string, as SpamAssassin collapses the body text: the
# Unicode white space (no-break and em spaces included)
_PERL_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# a run of white space, except a lone plain space (replaced by itself: half the matches of
# "[\s]+" on ordinary text, for the same result; 0.07 instead of 0.11 ms on a 5 KB body)
_WS = re.compile(f"[{_PERL_WS}](?:(?<= )[{_PERL_WS}]+|(?<=[{_PERL_WS.replace(' ', '')}])[{_PERL_WS}]*)")
_PERL_TRIM = " \t\n\r\f\v"  # Perl's \s on octets: what s/^\s+// and s/\s+$// take
_PARA = re.compile(f"\n+[{_PERL_WS}]*\n+")  # Message::get_body_text_array_common: /\n+\s*\n+/
# the end of the header section (only its end is read: the same as that of "\r?\n\r?\n", and a
# literal first character lets the engine skip to each newline)
_HEAD_END = re.compile(rb"\n\r?\n")


_IMAGE_TYPES = {"image/gif": "gif", "image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg"}
_HTML_NAME = re.compile(r"\.s?html?$", re.I)


_W1252_LIKELY = re.compile(rb"[^\x00-\x7f\xa0\xa9\xad\x82\x84\x85\x91-\x97\x99\xc0-\xd6\xd8-\xde\xe0-\xf6\xf8-\xfe]")
# charsets whose 7-bit text is ASCII as it stands (Node's _normalize does not decode it); others
# (ISO-2022-JP, UTF-7, HZ) encode their characters in 7 bits and are decoded
_ASCII_SUPERSET = re.compile(r"(?:|(?:us-)?ascii|ansi[_ ]?x3\.4-(?:1986|1968)|iso646-us|iso[ -]?8859(?:-\d{1,2})?"
                             r"|windows-\d{4}|cp\d{3,4}|utf-?8|(?:koi8|euc)-[a-z]{1,2}|big5|gbk|gb[ -]?18030(?:-20\d\d)?)\Z")


def normalize_charset(data: bytes, declared: str) -> str:
    """Message::Node::_normalize (normalize_charset, SpamAssassin's default; no
    Encode::Detect, which Debian does not install): ASCII as it is; then UTF-8 if the bytes are
    UTF-8, whatever was declared; then the declared charset, strictly (ISO-8859-1 read as
    Windows-1252); then Windows-1252 strictly if only its common letters and punctuation occur;
    at last Windows-1252 with U+FFFD for its five undefined bytes."""
    cs = (declared or "").strip().lower()
    eight_bit = not data.isascii()  # (in C, without a regex's per-byte cost)
    if not eight_bit and _ASCII_SUPERSET.match(cs):
        return data.decode("ascii")
    if eight_bit:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if cs in ("iso-8859-1", "iso8859-1", "iso88591", "windows-1252", "cp1252"):
        cs = "cp1252"
    if cs and cs not in ("us-ascii", "ascii", "utf-8", "utf8"):
        for name in (cs, "gbk") if re.fullmatch(r"gb[ -]?18030(?:-20\d\d)?", cs) else (cs,):
            try:
                return data.decode(name)
            except (LookupError, UnicodeDecodeError, ValueError):
                continue
    if not eight_bit:
        return data.decode("ascii")
    if _W1252_LIKELY.search(data) is None:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            pass
    return data.decode("cp1252", "replace")


def _clean_name(name: str) -> str:
    """PerMsgStatus::_get's ``:name``: white space collapsed (unless it is all white space),
    single quotes around the name taken off."""
    if not name.strip():
        return name
    n = " ".join(name.split())
    return n[1:-1] if len(n) >= 2 and n[0] == "'" and n[-1] == "'" else n


_FOLD = re.compile(r"\r?\n[ \t]+")
_EW = re.compile(r"=\?([A-Za-z0-9*_-]+)\?([bqBQ])\?([^?]*)\?=")
_EW_GAP = re.compile(r"(=\?[A-Za-z0-9*_-]+\?[bqBQ]\?[^?]*\?=)\s+(?==\?[A-Za-z0-9*_-]+\?[bqBQ]\?[^?]*\?=)")
_NOT_DECODED = re.compile(r"(?:Received|(?:Resent-)?(?:Message-ID|Date)|MIME-Version|References|In-Reply-To|List-.*)\Z",
                          re.I | re.S)


def decode_header_value(value: str, name: str = "") -> str:
    """A header value as SpamAssassin decodes it (Node's header() and _decode_header): unfolded
    (a line break and the white space after it: one space); RFC 2047 encoded words decoded
    wherever they stand, white space between two of them dropped, nothing added around them,
    adjacent words of one charset joined before their bytes are decoded (a character split
    across two words), the charset's invalid bytes U+FFFD; Received, Date, Message-ID,
    MIME-Version, References, In-Reply-To and List-* are not decoded. Never raises."""
    v = _FOLD.sub(" ", value).replace("\r\n", "\n").replace("\n", "") if "\n" in value else value
    if "=?" not in v or (name and _NOT_DECODED.match(name)):
        return v
    v = _EW_GAP.sub(r"\1", v)
    # [text or bytes, charset (None for text as it stands; an encoded word's charset may be
    # empty, "=?*lang?B?...?=", and its bytes are still bytes)]
    sections: list[list[Any]] = []

    def add(data: Any, charset: str | None) -> None:
        if sections and sections[-1][1] == charset:
            sections[-1][0] += data
        else:
            sections.append([data, charset])

    pos = 0
    for m in _EW.finditer(v):
        if m.start() > pos:
            add(v[pos:m.start()], None)
        add(_ew_bytes(m.group(2), m.group(3)), m.group(1).lower().split("*")[0])
        pos = m.end()
    if pos < len(v):
        add(v[pos:], None)
    return "".join(data if charset is None else _ew_text(data, charset) for data, charset in sections)


def _ew_bytes(cte: str, data: str) -> bytes:
    """An encoded word's bytes: base64 (leniently: stray characters dropped, padding added) or
    quoted-printable with "_" for a space."""
    raw = data.encode("ascii", "replace")
    if cte in "bB":
        raw = re.sub(rb"[^A-Za-z0-9+/]", b"", raw)
        raw = raw[:len(raw) - len(raw) % 4] if len(raw) % 4 == 1 else raw + b"=" * (-len(raw) % 4)
        try:
            return base64.b64decode(raw)
        except ValueError:
            return b""
    return binascii.a2b_qp(raw.replace(b"_", b"=20"))


def _ew_text(data: bytes, charset: str) -> str:
    """Node's _normalize insisting on the declared charset: its invalid bytes U+FFFD
    (ISO-8859-1 read as Windows-1252); an unknown charset as normalize_charset would guess."""
    if data.isascii() and _ASCII_SUPERSET.match(charset):
        return data.decode("ascii")
    cs = "cp1252" if charset in ("iso-8859-1", "iso8859-1", "iso88591", "windows-1252", "cp1252") else charset
    try:
        return data.decode(cs, "replace")
    except (LookupError, ValueError):
        return normalize_charset(data, "")


@dataclass(slots=True)
class SaMessage:
    headers: list[tuple[str, str]]  # decoded
    raw_headers: list[tuple[str, str]]
    envelope_from: str = ""
    # no envelope came with the message (a stored message scanned offline): EnvelopeFrom is
    # guessed from its headers as SpamAssassin guesses it (envelope())
    envelope_guess: bool = False
    subject: str = ""
    paragraphs: list[str] = field(default_factory=list)
    body: str = ""  # paragraphs joined with "\n"
    rawbody: str = ""
    full: str = ""
    uris: list[str] = field(default_factory=list)
    html: HtmlFacts = field(default_factory=HtmlFacts)  # the largest HTML part's
    html_all: list[HtmlFacts] = field(default_factory=list)  # every HTML part's (HTMLEval's tests)
    has_html: bool = False
    body_len: int = 0  # bytes after the header section (LF line ends): SpamAssassin's pristine_body_length
    attachment_names: list[str] = field(default_factory=list)
    part_headers: list[list[tuple[str, str]]] = field(default_factory=list)
    content_types: Counter[str] = field(default_factory=Counter)
    missing_separator: bool = False
    mime: dict[str, float] = field(default_factory=dict)  # MIMEEval facts (check_for_mime, ...)
    # every text/* leaf, attachments too: (content type, decoded text up to RAWBODY_PART_SCAN)
    text_parts: list[tuple[str, str]] = field(default_factory=list)
    # ImageInfo's images: (gif|png|jpeg, part name, decoded bytes) of the base64 image parts
    images: list[tuple[str, str, bytes]] = field(default_factory=list)
    rawbody_len: int = 0  # the rawbody parts' characters, joined without separators
    # each text part's rawbody in SpamAssassin's short paragraphs (short_paragraphs; rawbody: them joined)
    rawbody_parts: list[str] = field(default_factory=list)
    # per multipart/alternative part: its text parts as (content type, rendered text, HTML with an <img>)
    alternatives: list[list[tuple[str, str, bool]]] = field(default_factory=list)
    trust: TrustConfig = field(default_factory=TrustConfig)  # where the trust path's boundary lies
    _hcache: dict[str, str | None] = field(default_factory=dict)
    _rcache: dict[str, str | None] = field(default_factory=dict)  # rule_header's
    cache: dict[str, Any] = field(default_factory=dict)  # per-message values the eval functions share

    def header(self, spec: str) -> str | None:
        """Value for a header spec as an eval function reads it (SpamAssassin's ``get`` in scalar
        context): ``Name``, ``Name:raw``, ``Name:addr``, ``Name:name``, ``Name:name:raw``,
        ``:first``/``:last``, ``ALL``, ``ToCc``, ``MESSAGEID``, ``EnvelopeFrom``, the trust path's
        ``X-Spam-Relays-*`` and ``ALL-TRUSTED``/``-UNTRUSTED``/``-INTERNAL``/``-EXTERNAL``: with
        ``:addr`` or ``:name`` the first address or name, else the values joined. None when absent."""
        if spec in self._hcache:
            return self._hcache[spec]
        vals = self._get(spec)
        if vals is None:
            v = None
        elif {"addr", "name"} & set(spec.split(":")[1:]):  # one address or name: the first
            v = vals[0] if vals else ""
        else:
            v = "\n".join(vals)
        self._hcache[spec] = v
        return v

    def rule_header(self, spec: str) -> str | None:
        """What a header rule matches (SpamAssassin 4's Check plugin reads ``get`` in list
        context): every value, every address (``:addr``) or every name (``:name``) of every
        header of that name (or of the first or last with ``:first``/``:last``). A field's
        value ends with its newline there, so the values are each followed by one (Check.pm
        joins them by nothing when the first ends with a newline: ``X-Mailer =~ /q[^u]/`` meets
        the newline after a last "Q"); addresses and names, the envelope sender and the
        whole-header texts (which end with their own) are joined by newlines. None when there
        is nothing (the rule's ``if-unset`` text then)."""
        try:
            return self._rcache[spec]
        except KeyError:
            pass
        vals = self._get(spec)
        if not vals:
            v = None
        elif _field_values(spec):
            v = "".join(x + "\n" for x in vals)
        else:
            v = "\n".join(vals)
        self._rcache[spec] = v
        return v

    def _get(self, spec: str) -> list[str] | None:
        """PerMsgStatus::_get: the values of a header spec; None when the header is absent."""
        name, _, rest = spec.partition(":")
        mods = set(rest.split(":")) if rest else set()
        raw = "raw" in mods
        # (addresses and names are parsed from the raw value, then a name decoded, as _get does)
        src = self.raw_headers if raw or "addr" in mods or "name" in mods else self.headers
        if name == "ALL":
            if not src:
                return None
            # Node::get_all_headers: the fields up to the one that would take ALL past 64 KB
            size = 0
            lines = []
            for n, v in src:
                size += len(n) + len(v) + 2
                if size > MAX_ALL_HEADERS:
                    break
                lines.append(_field(n, v, raw))
            return ["".join(lines)]
        which = RELAY_HEADERS.get(name.lower())
        if which is not None:
            # always present (maybe empty), whatever headers of that name the message carries
            return [self.relays().pseudo_header(which)]
        if name in RANGE_HEADERS:
            got = self._range(src, *RANGE_HEADERS[name])
            return None if got is None else [got]
        if name == "ToCc":
            vals = self._values(src, "to") + self._values(src, "cc")
        elif name == "MESSAGEID":
            vals = []
            # SpamAssassin's order (PerMsgStatus::_get): the list's copies before the original
            for h in ("x-message-id", "resent-message-id", "x-original-message-id", "message-id"):
                vals += self._values(src, h)
        elif name == "EnvelopeFrom":
            env = self.envelope()
            vals = [env] if env else []
        else:
            vals = self._values(src, name.lower())
        if not vals:
            return None
        if "first" in mods:
            vals = vals[:1]
        elif "last" in mods:
            vals = vals[-1:]
        if "addr" in mods:  # (Util::parse_header_addresses: no "@", no address)
            return [a for _, a in self.addresses(vals) if "@" in a]
        if "name" in mods:
            # the display names (name:raw as written, RFC 2047 words and 8-bit bytes undecoded);
            # decoded ones with their white space collapsed and single quotes taken off
            names = [d for d, _ in self.addresses(vals) if d]
            return names if raw else [_clean_name(decode_header_value(d, name)) for d in names]
        return vals

    def addresses(self, values: list[str]) -> list[tuple[str, str]]:
        """(name, address) of every address of these header values as SpamAssassin's own
        parser reads them (saaddr; "" where it has none), each value parsed once per message
        (the rules ask for the same From/To/Reply-To about ten times)."""
        memo: dict[str, list[tuple[str, str]]] = self.cache.setdefault("addresses", {})
        out: list[tuple[str, str]] = []
        for v in values:
            pairs = memo.get(v)
            if pairs is None:
                pairs = memo[v] = [(d or "", a or "") for d, a in parse_addresses(v)]
            out += pairs
        return out

    def _values(self, src: list[tuple[str, str]], lname: str) -> list[str]:
        # headers by lower-cased name, indexed once per message (rules ask for ~60 names)
        key = "raw_index" if src is self.raw_headers else "index"
        index: dict[str, list[str]] | None = self.cache.get(key)
        if index is None:
            index = {}
            for n, v in src:
                index.setdefault(n.lower(), []).append(v)
            self.cache[key] = index
        return list(index.get(lname, ()))

    def header_count(self, name: str) -> int:
        return len(self._values(self.raw_headers, name.lower()))

    def envelope(self) -> str | None:
        """The envelope sender the rules see: the SMTP one, or for a message without one
        (``envelope_guess``) SpamAssassin's guess (PerMsgStatus::get_envelope_from): the
        envelope-from of the last untrusted relay's Received header (else the first trusted
        one's), else X-Envelope-From, Envelope-Sender or Return-Path when no Received header
        sits above it. None when there is none to trust."""
        if not self.envelope_guess:
            return self.envelope_from
        if "envelope" not in self.cache:
            self.cache["envelope"] = self._guess_envelope()
        env: str | None = self.cache["envelope"]
        return env

    def _first_addr(self, name: str) -> str | None:
        vals = self._values(self.headers, name)
        if not vals:
            return None
        # (an address needs its "@" to SpamAssassin's parser: "yyyy" is a name, no address)
        return next((a for _, a in self.addresses(vals[:1]) if "@" in a), None)

    def _guess_envelope(self) -> str | None:
        p = self.relays()
        hop = p.untrusted[0] if p.untrusted else p.trusted[-1] if p.trusted else None
        if hop is not None and hop.envfrom is not None and (hop.envfrom.find("@") > 0 or hop.envfrom == ""):
            return hop.envfrom
        x_sender = self._first_addr("x-sender")
        if x_sender and "@" in x_sender and any("(fetchmail" in r for r in self._values(self.headers, "received")):
            return None  # fetchmail reuses a list's X-Sender: no envelope header can be trusted
        names = [n.lower() for n, _v in self.headers]
        first_received = names.index("received") if "received" in names else len(names)
        below = set(names[first_received + 1:])  # header names below a Received header
        for name, final in (("x-envelope-from", True), ("envelope-sender", False), ("return-path", False)):
            env = self._first_addr(name)
            if env is None:
                continue
            if name in below:  # (SpamAssassin: ALL =~ /^Received:.*?^Name:/smi)
                if final:
                    return None  # relayed through a list that may have used a new envelope
                continue
            return env
        return None

    def relays(self) -> RelayPath:
        """The trust path (relays.py), parsed on first use."""
        p: RelayPath | None = self.cache.get("relays")
        if p is None:
            originating = [vals[-1] for h in ORIGINATING_IP_HEADERS if (vals := self._values(self.headers, h.lower()))]
            p = self.cache["relays"] = relay_path(self._values(self.headers, "received"), self.trust, originating)
        return p

    def _range(self, src: list[tuple[str, str]], boundary: str, after: bool) -> str | None:
        """The headers from the top down to the Received header after the last trusted (or
        internal) relay, or from that Received header down (PerMsgStatus's
        get_all_hdrs_in_rcvd_index_range)."""
        p = self.relays()
        cut = (p.last_trusted_index if boundary == "trusted" else p.last_internal_index) + 1
        out: list[str] = []
        index = -1
        raw = src is self.raw_headers
        for n, v in src:
            if n.lower() == "received":
                index += 1
            if after and index >= cut or not after and index < cut:
                out.append(_field(n, v, raw))
            elif not after and index == cut:
                out.append(_field(n, v, raw))
                break
        return "".join(out) or None


def _field(name: str, value: str, raw: bool) -> str:
    """A header field as ``ALL`` lists it: a raw value carries the white space after its colon."""
    return f"{name}:{value}\n" if raw else f"{name}: {value}\n"


def body_lines(m: SaMessage) -> list[str]:
    """The rendered body as SpamAssassin's body rules read it: UTF-8 octets (one character per
    byte), one element per line with its newline, a line longer than 2,048 bytes split after
    the last space in its first 2,048 (or at 2,048 when there is none), as
    Message::split_into_array_of_short_lines does. Built once per message."""
    lines: list[str] | None = m.cache.get("body_lines")
    if lines is None:
        lines = []
        parts = octets(m.body).split("\n")
        last = len(parts) - 1
        for i, line in enumerate(parts):
            if i < last:
                line += "\n"
            while len(line) > MAX_BODY_LINE:
                k = line.rfind(" ", 0, MAX_BODY_LINE + 1) + 1 or MAX_BODY_LINE
                lines.append(line[:k])
                line = line[k:]
            if line:
                lines.append(line)
        m.cache["body_lines"] = lines
    return lines


def sa_content_type(p: MimePart) -> str:
    """A leaf's type as Util::parse_content_type reads its last Content-Type: the text up to
    the first ";" or white space after the subtype (``TEXT/PLAIN charset=US-ASCII``, its ";"
    missing, is text/plain, where the standard library keeps "text/plain charset=us-ascii"),
    and any type starting with "text" but vCards, calendars and HTML is text/plain. A leaf
    without the field keeps the parser's type (a digest's parts are messages), and so does a
    multipart the parser read as one text leaf (its boundary never found: MimeView)."""
    values = [v for n, v in p.headers if n.lower() == "content-type"]
    t = field_type(values) if values else p.content_type
    return p.content_type if t.startswith("multipart/") else t


def _field_values(spec: str) -> bool:
    """Whether SpamAssassin's ``get`` gives this spec's values as header fields' values, each
    ending with its newline: not addresses or names, not the envelope sender, the trust path's
    relay lines or the whole-header texts."""
    name, _, rest = spec.partition(":")
    if rest and {"addr", "name"} & set(rest.split(":")):
        return False
    return not (name in ("ALL", "EnvelopeFrom") or name in RANGE_HEADERS or name.lower() in RELAY_HEADERS)


def short_paragraphs(text: str) -> list[str]:
    """A part's rawbody in the pieces a rawbody rule runs on one by one, as
    Message::split_into_array_of_short_paragraphs cuts it: a text longer than 2,048 characters
    in pieces of 2,048-4,096, each ending at the first newline after its first 2,048
    characters, else the first ">", else the first space, else 2,049 long. A long HTML line is
    thus several pieces: a ``^`` meets each piece's start, and no match runs from one into the
    next."""
    n = len(text)
    if n <= MAX_BODY_LINE:
        return [text]
    out: list[str] = []
    ofs = 0
    while n - ofs > 2 * MAX_BODY_LINE:
        for sep in ("\n", ">", " "):
            j = text.find(sep, ofs + MAX_BODY_LINE)
            if j >= 0 and j - ofs + 1 <= 2 * MAX_BODY_LINE:
                break
        else:
            j = ofs + MAX_BODY_LINE
        out.append(text[ofs:j + 1])
        ofs = j + 1
    if ofs < n:
        out.append(text[ofs:])
    return out


def view_limit(policy: PolicySnapshot) -> int:
    """Characters of decoded text (and octets of raw body and of the whole message) a view
    holds: the rules layer's ``max_size`` (a global setting), never more than
    :data:`MAX_TEXT`. The setting was checked when saved but read nowhere: every view held
    MAX_TEXT whatever it said. Bayes reads the same view, in the milter and in training."""
    return min(MAX_TEXT, int(policy.settings_for("rules", None).max_size))


def build_view(headers: list[tuple[str, str]], raw: bytes, mime: MimeView, envelope_from: str = "",
               max_text: int = MAX_TEXT, gaps: list[str] | None = None) -> SaMessage:
    """``gaps``: per header, the space the MTA took off after its colon (MessageContext's
    ``header_gaps``; one space when not given): a ``:raw`` value starts with all the white space
    written after the colon, as SpamAssassin's does (``Date:raw =~ /^\t/``)."""
    if any(len(n) > MAX_HEADER_KEY_LENGTH or len(x) > MAX_HEADER_VALUE_LENGTH for n, x in headers):
        # SpamAssassin's parser cuts a field's name at 256 octets and its value at 8,192 (and
        # sets truncated_header, parseflags.py): its rules never search more, and a rule that
        # backtracks over a long value took time square in its length (a From of 60 KB of
        # dots: 13 s in __PDS_FROM_NAME_TO_DOMAIN; tests/unit/antispam/test_fuzz_regressions.py)
        headers = [(n[:MAX_HEADER_KEY_LENGTH], x[:MAX_HEADER_VALUE_LENGTH]) for n, x in headers]
    if gaps is None or len(gaps) != len(headers):
        gaps = [" "] * len(headers)
    # (the raw values keep what follows the colon, less the field's line end: trailing spaces
    # and tabs stay, "Cc: \n" is " " raw, as SpamAssassin keeps them)
    raw_headers = [(n, (gap + v.replace("\r\n", "\n")).rstrip("\r\n")) for (n, v), gap in zip(headers, gaps, strict=True)]
    # (decoded as Node::header decodes: the value trimmed, then its encoded words decoded, so a
    # space an encoded word holds at either end stays: "=?gb2312?q?_=B4=F2?=" is " ...")
    dec = [(n, decode_header_value(v.strip(_PERL_TRIM), n)) for n, v in headers]
    v = SaMessage(headers=dec, raw_headers=raw_headers, envelope_from=envelope_from)
    v.subject = next((x for n, x in dec if n.lower() == "subject"), "")
    texts: list[str] = []
    raws: list[tuple[tuple[int, ...], str]] = []  # (the part's path, its rawbody)
    plain: list[str] = []
    links: list[str] = []
    budget = max_text
    raw_budget = max_text  # bytes of rawbody, all parts together (hostile input: many parts)
    html_of: dict[int, HtmlFacts] = {}
    plain_of: dict[int, str] = {}  # the text/plain parts as rendered (multipart_alternative_difference)
    # SpamAssassin's tree: a message/* part other than rfc822 and global (delivery-status,
    # external-body, partial) is a leaf it does not read as a message (Message::_parse_normal,
    # bug 7125); the standard library reads what it holds as header blocks or a message. A
    # mimeheader rule reads every node, the message and its containers too (find_parts)
    opaque = [path for path, ctype, _ in mime.containers if ctype.startswith("message/") and ctype not in _READ_MESSAGES]
    leaves = [p for p in mime.parts if not _under(p.path, opaque)] if opaque else mime.parts
    nodes = [(path, fields) for path, _, fields in mime.containers if not _under(path, opaque)]
    nodes += [(p.path, p.headers) for p in leaves]
    nodes.sort(key=lambda n: n[0])  # (a path sorts before its children's: pre-order)
    v.part_headers = [fields for _, fields in nodes]
    for p in leaves:
        v.content_types[p.content_type] += 1
        if p.content_type in _IMAGE_TYPES and p.transfer_encoding == "base64" and len(v.images) < 1000:
            v.images.append((_IMAGE_TYPES[p.content_type], p.filename, p.payload))
        if p.filename:
            v.attachment_names.append(p.filename)
        if p.text is not None and len(v.text_parts) < 1000:
            v.text_parts.append((p.content_type, p.text[:RAWBODY_PART_SCAN]))
        # SpamAssassin renders every text/plain and text/html leaf, attachments too (Node's
        # rendered()), and a part whose name ends in .htm, .html or .shtml as HTML whatever its
        # type (effective_type: an "application/octet-stream" warezcds.html)
        eff = "text/html" if p.filename and _HTML_NAME.search(p.filename) else sa_content_type(p)
        text = p.text
        if eff in ("text/plain", "text/html"):
            # decoded as SpamAssassin's normalize_charset decodes what it renders, with LF line
            # ends as its decode() leaves them (quoted-printable, and base64 of a text type; the
            # rest came to it with LF ones, where the milter sees SMTP's CRLF)
            data = p.payload
            if p.transfer_encoding != "base64" or p.content_type.startswith(("text/", "message/")):
                data = data.replace(b"\r\n", b"\n")
            text = normalize_charset(data, p.charset)
        if text is None or budget <= 0:
            continue
        t = text[:budget]
        budget -= len(t)
        plain.append(t[:RAWBODY_PART_SCAN])  # (the links of the text, for Bayes; URIBL: layers/uribl.py)
        # rawbody as SpamAssassin reads it: the part's bytes, not decoded from their charset
        # (normalize_charset decodes only the rendered text), one character per byte, so "[\x80-\xff]" meets
        # the bytes of a UTF-8 or Big5 text; with LF line ends (the milter sees SMTP's CRLF,
        # SpamAssassin is given the message with LF ones: a "$" must not meet a "\r")
        if eff != "text/calendar":  # (get_decoded_body_text_array skips calendars, bug 4843)
            rb = p.payload[:min(RAWBODY_PART_SCAN, max(raw_budget, 0))]
            raw_budget -= len(rb)
            raws.append((p.path, rb.decode("latin-1").replace("\r\n", "\n")))
        if eff == "text/plain":
            plain_of[p.index] = t[:BODY_PART_SCAN]
        if eff == "text/html" and t:  # (an empty one is not rendered: no HTML facts, Node::rendered)
            facts = render_html(t)
            html_of[p.index] = facts
            v.has_html = True
            v.html_all.append(facts)
            # several HTML parts: keep the facts of the largest
            if facts.length >= v.html.length:
                v.html = facts
            links += facts.links
            texts.append(facts.text[:BODY_PART_SCAN])
        elif eff in ("text/plain", "text/html"):  # (calendars, vCards: not rendered; text/enriched is text/plain)
            texts.append(t[:BODY_PART_SCAN])
    # multipart/alternative carries the same text twice; SpamAssassin renders the text part
    # and the HTML part both, so do we. The parts are joined by one newline, as there: a part
    # that does not end a paragraph runs on into the next.
    text = "\n".join(texts)
    paras = [_WS.sub(" ", p) for p in _PARA.split(text.replace("\r\n", "\n"))]
    paras = [p for p in paras if p]  # (each part is cut at BODY_PART_SCAN; body rules read body_lines)
    v.paragraphs = ([v.subject] if v.subject else []) + paras
    v.body = "\n".join(v.paragraphs)
    for path in opaque:  # (SpamAssassin's rawbody holds message/* leaves too, as their text)
        if not _under(path, opaque) and raw_budget > 0:
            text_of = _opaque_text(mime.message, path)[:min(RAWBODY_PART_SCAN, raw_budget)]
            raw_budget -= len(text_of)
            raws.append((path, text_of))
    if opaque:
        raws.sort(key=lambda r: r[0])
    v.rawbody_parts = [piece for _, r in raws for piece in short_paragraphs(r)]
    v.rawbody = "\n".join(v.rawbody_parts)
    v.rawbody_len = sum(map(len, v.rawbody_parts))
    v.full = raw[:max_text].decode("latin-1")
    uris: dict[str, None] = {}
    for link in links:
        u = normalize_link(link)
        if u:
            uris[u] = None
    for u in find_urls("\n".join(plain)):
        uris[u] = None
    v.uris = bounded(uris)  # (500, then up to 500 more of hosts not among theirs)
    sep = _HEAD_END.search(raw)
    if sep is not None:
        v.body_len = len(raw) - sep.end() - raw.count(b"\r\n", sep.end())
    v.missing_separator = b"\r\n\r\n" not in raw[:256 * 1024] and b"\n\n" not in raw[:256 * 1024]
    v.mime = _mime_counters(mime)
    v.alternatives = _alternative_groups(mime, html_of, plain_of)
    return v


def _alternative_roots(m: Message, path: tuple[int, ...], depth: int, roots: list[tuple[int, ...]]) -> None:
    """The paths of the multipart/alternative parts, into ``roots`` (a module function, not a
    nested one: a nested function that calls itself is a reference cycle, freed only by the
    garbage collector)."""
    if depth > 50 or not m.is_multipart():
        return
    if m.get_content_type() == "multipart/alternative":
        roots.append(path)
    for i, sub in enumerate(m.get_payload() or []):
        if isinstance(sub, Message):
            _alternative_roots(sub, path + (i,), depth + 1, roots)


_READ_MESSAGES = ("message/rfc822", "message/global")  # the message/* types SpamAssassin parses


def _under(path: tuple[int, ...], tops: list[tuple[int, ...]]) -> bool:
    """Whether ``path`` lies below one of ``tops`` (not at it)."""
    return any(len(path) > len(t) and path[:len(t)] == t for t in tops)


def _bytes_of(m: Message) -> bytes:
    """``m`` written out as bytes, its header fields folded as they came (``as_string``'s
    ``maxheaderlen=0``)."""
    from email.generator import BytesGenerator
    from io import BytesIO

    out = BytesIO()
    BytesGenerator(out, mangle_from_=False, maxheaderlen=0).flatten(m)
    return out.getvalue()


def _opaque_text(top: Message, path: tuple[int, ...]) -> str:
    """The text of a message/* part SpamAssassin keeps as a leaf, as the standard library's
    reading of it gives it back (its header blocks or message written out again), octets.
    Written as bytes: 8-bit header values stay as they came (``as_string`` encodes each again
    as an ``unknown-8bit`` word, in time square in its length: 2.7 s for a 63 KB part) and an
    8-bit body is not encoded again."""
    node: Any = top
    try:
        for i in path:
            node = node.get_payload()[i]
        sub = node.get_payload()
        blocks = sub if isinstance(sub, list) else [sub]
        data = b"".join(_bytes_of(b) if isinstance(b, Message) else str(b).encode("utf-8", "surrogateescape")
                        for b in blocks)
    except Exception:  # noqa: BLE001 - the standard library failing to write a hostile part again
        return ""
    return data.replace(b"\r\n", b"\n").decode("latin-1")


def _sa_nodes(top: Message) -> Iterator[Message]:
    """The message's nodes in SpamAssassin's tree, pre-order (find_parts): the standard
    library's walk, without what a message/* part other than rfc822 and global holds."""
    stack = [top]
    while stack:
        part = stack.pop()
        yield part
        if part.is_multipart():
            ctype = part.get_content_type()
            if ctype.startswith("message/") and ctype not in _READ_MESSAGES:
                continue
            sub = part.get_payload()
            if isinstance(sub, list):
                stack.extend(reversed([x for x in sub if isinstance(x, Message)]))


def _alternative_groups(mime: MimeView, html_of: dict[int, HtmlFacts],
                        plain_of: dict[int, str]) -> list[list[tuple[str, str, bool]]]:
    """The rendered text/plain and text/html parts (as the body has them) under each
    multipart/alternative part, for BodyEval's
    multipart_alternative_difference; none for an Exchange meeting request (a message that is
    multipart/alternative of text/html and text/calendar), which SpamAssassin skips."""
    roots: list[tuple[int, ...]] = []
    top = mime.message
    _alternative_roots(top, (), 0, roots)
    if not roots:
        return []
    children = top.get_payload() if top.is_multipart() else []
    if (top.get_content_type() == "multipart/alternative" and isinstance(children, list) and len(children) == 2
            and [c.get_content_type() if isinstance(c, Message) and not c.is_multipart() else "" for c in children]
            == ["text/html", "text/calendar"]):
        return []
    groups = []
    for root in roots:
        group = []
        for p in mime.parts:
            if p.path[:len(root)] != root or not p.content_type.startswith("text"):
                continue
            facts = html_of.get(p.index)
            if facts is not None:
                group.append(("text/html", facts.text, "img" in facts.inside))
            elif p.index in plain_of:  # (Node's rendered(): other text types are not rendered)
                group.append(("text/plain", plain_of[p.index], False))
        groups.append(group)
    return groups


_ASCII_CHARSET = re.compile(r"(?:us-ascii|ansi_x3\.4-1968|iso-ir-6|ansi_x3\.4-1986|iso_646\.irv:1991|ascii|iso646-us"
                            r"|us|ibm367|cp367|csascii)")
_QP_EXCESS = re.compile(r"=(?:09|3[0-9ABCEF]|[2456][0-9A-F]|7[0-9A-E])")
_QP_TRAILING = re.compile(r"((?:=09|=20)+)\s*$")
_BAD_ISO = re.compile(r"iso-\S+-\S+\b", re.I)
_GOOD_ISO = re.compile(r"iso-(?:8859-\d{1,2}|2022-(?:jp|kr))\b")
_DISPOSITION = re.compile(r"(?:attachment|inline)")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _raw_lines(part: Any) -> list[str]:
    """The part's body lines as written (transfer encoding kept), each with its newline, LF."""
    try:
        raw = part.get_payload(decode=False)
    except (ValueError, TypeError):
        # 8-bit text is decoded by the charset parameter, with ASCII in its place only for a
        # charset the codec registry does not know (LookupError): one holding a NUL
        # (ValueError), given in RFC 2231 form (a tuple: TypeError) or a codec that refuses
        # "replace" (idna, undefined: UnicodeError) raised out of the message view instead
        # (tests/unit/antispam/test_fuzz_regressions.py); read as that ASCII fallback reads it
        # (each 8-bit byte, a surrogate escape there, one U+FFFD)
        payload = getattr(part, "_payload", None)
        raw = _NON_ASCII.sub("\ufffd", payload) if isinstance(payload, str) else None
    if not isinstance(raw, str):
        return []
    # split at line feeds only, as SpamAssassin's raw() lines are (splitlines also splits at a
    # bare CR, a form feed or U+2028: a QP line holding a CR read as two short ones)
    lines = raw[:RAWBODY_PART_SCAN * 4].replace("\r\n", "\n").split("\n")
    out = [ln + "\n" for ln in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _mime_counters(mime: MimeView) -> dict[str, float]:
    """The MIMEEval facts SpamAssassin keeps (Mail::SpamAssassin::Plugin::MIMEEval:
    _check_attachments, _check_mime_header, _check_base64_length, check_ma_non_text). Every
    part's headers count, containers and the message itself included; body lines only of leaves."""
    c: dict[str, float] = {"mime_body_html_count": 0, "mime_body_text_count": 0, "mime_qp_count": 0,
                           "mime_base64_count": 0, "mime_base64_encoded_text": 0, "mime_qp_long_line": 0,
                           "mime_attachment": 0, "mime_bad_iso_charset": 0, "mime_multipart_ratio": 1.0,
                           "base64_length": 0, "ma_non_text": 0, "mime_qp_excess": 0,
                           "mimepart_limit_exceeded": 0,
                           "mime_faraway_charset": 0}  # ok_locales "all" (the default): never set
    alternative = False
    qp_bytes = qp_count = 0
    part_bytes: list[int | None] = []
    part_type: list[str] = []
    for part in _sa_nodes(mime.message):
        ctype = part.get_content_type()
        cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        cd = str(part.get("Content-Disposition", "")).strip().lower()
        try:
            charset = part.get_content_charset() or ""
        except (ValueError, TypeError):
            # the standard library's RFC 2231 decoding raises on mixed forms ("charset*=a;
            # charset*0=b": TypeError) and on a continuation number of over 4,300 digits
            # (ValueError); counted as a part without one (the MIME view decodes it as UTF-8)
            charset = ""
        multipart = part.is_multipart()
        if multipart:
            sub = part.get_payload()
            if isinstance(sub, list) and len(sub) >= 1000:
                c["mimepart_limit_exceeded"] = 1  # SpamAssassin's parser stops at the 1,000th part of a multipart
        if ctype == "multipart/alternative":
            alternative = True
            # (no boundary, or none found: the parser made it a leaf, whose get_payload() decodes
            # 8-bit text by a charset parameter that may be a tuple, RFC 2231, and raise)
            children = part.get_payload() if multipart else None
            for ch in children if isinstance(children, list) else ():
                # its leaf children (check_ma_non_text): text, or RTF
                if isinstance(ch, Message) and not ch.is_multipart():
                    t = ch.get_content_type()
                    if not t.startswith("text/") and t != "application/rtf":
                        c["ma_non_text"] = 1
        if ctype == "text/html":
            c["mime_body_html_count"] += 1
        elif ctype.startswith("text"):
            c["mime_body_text_count"] += 1
        if "base64" in cte:
            c["mime_base64_count"] += 1
        elif "quoted-printable" in cte:
            c["mime_qp_count"] += 1
        if "attachment" in cd:
            c["mime_attachment"] += 1
        if (ctype.startswith("text") and "base64" in cte and (not charset or _ASCII_CHARSET.search(charset))
                and not _DISPOSITION.match(cd)):
            c["mime_base64_encoded_text"] = 1
        if _BAD_ISO.search(charset) and not _GOOD_ISO.search(charset):
            c["mime_bad_iso_charset"] = 1
        if multipart:
            continue
        if ctype.startswith("multipart/") and (part is not mime.message or boundary_param(part) is not None):
            # its boundary never found (or none given, in a part; one the standard library
            # cannot read counts as none: SpamAssassin reads no "boundary*="): SpamAssassin's parser keeps
            # the multipart as a container and makes its body a child leaf without header
            # fields, which parse_content_type reads as text/plain (the message itself without
            # a boundary parameter is read as a text leaf: its parent gives it no boundary)
            c["mime_body_text_count"] += 1
            ctype, cte, cd = "text/plain", "", ""
        part_type.append(ctype)
        part_bytes.append(0 if "attachment" not in cd else None)
        counted = alternative and "attachment" not in cd and ctype in ("text/plain", "text/html")
        b64_length = cte == "base64" and ctype != "application/ics"
        if not (counted or b64_length or cte == "quoted-printable"):
            continue  # nothing below reads this part's lines (splitting them: ~10 us per 5 KB part)
        lines = _raw_lines(part)
        if b64_length:
            c["base64_length"] = max(c["base64_length"], max((len(ln) for ln in lines), default=0))
        for line in lines:
            if counted:
                part_bytes[-1] = (part_bytes[-1] or 0) + len(line)
            if cte == "quoted-printable" and not line.startswith("SPAM: "):
                if len(line) > 79:  # RFC 5322's 78 characters and the newline
                    c["mime_qp_long_line"] = 1
                qp_bytes += len(line)
                if "=" in line:
                    n = len(_QP_EXCESS.findall(line))
                    if n:
                        qp_count += n
                        trailing = _QP_TRAILING.search(line)
                        if trailing:  # encoded white space at the end of a line is fine
                            qp_count -= len(trailing.group(1)) // 3
    # SpamAssassin then replaces mime_qp_count (the number of quoted-printable parts) by this
    # count of needlessly encoded characters when quoted-printable lines exist: __MIME_QP means
    # "encodes what it need not", and a part that encodes only "=" or 8-bit text does not hit it
    c["mime_qp_excess"] = qp_count
    if qp_bytes:
        c["mime_qp_count"] = qp_count
    if alternative:
        text = html = None
        for i in range(len(part_type) - 1, -1, -1):  # the last text and HTML parts
            if part_bytes[i] is None:
                continue
            if html is None and part_type[i] == "text/html":
                html = part_bytes[i]
            elif text is None and part_type[i] == "text/plain":
                text = part_bytes[i]
            if html is not None and text is not None:
                break
        if text is not None and html:
            c["mime_multipart_ratio"] = text / html
    return c


_views: weakref.WeakKeyDictionary[MessageContext, SaMessage] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


_BLANK_RUN = re.compile(rb"\n(?:[ \t\r\f\v]*\n){21}")  # (a leading literal: the engine skips to each newline)
MAX_BLANK_LINES = 20


def squash_blank_lines(raw: bytes) -> bytes:
    """Mail::SpamAssassin::Message's parse: a run of more than 20 blank (white space only) body
    lines keeps its first line and its last 19, before the MIME parts are read (the pristine
    message, which full rules and the body length read, keeps them all). The same object back
    when there is no such run."""
    m = _HEAD_END.search(raw)
    if m is None or _BLANK_RUN.search(raw, m.end() - 1) is None:
        return raw
    lines = raw[m.end():].splitlines(keepends=True)
    start: int | None = None
    cnt = len(lines) - 1
    while cnt >= 0:
        if not lines[cnt].strip(b" \t\r\n\f\v"):
            if start is None:
                start = cnt
            if cnt != 0:
                cnt -= 1
                continue
        if start is not None:
            num = start - cnt
            if num > MAX_BLANK_LINES:
                del lines[cnt + 2:cnt + 2 + num - MAX_BLANK_LINES]
            start = None
        cnt -= 1
    return raw[:m.end()] + b"".join(lines)


def message_view(ctx: MessageContext) -> SaMessage:
    """The view for a message context, built once and shared (rules, Bayes, URIBL)."""
    with _lock:
        v = _views.get(ctx)
    if v is None:
        raw = ctx.raw_bytes()
        mime = ctx.mime
        squashed = squash_blank_lines(raw)
        if squashed is not raw:  # (rare: the shared MIME view stays as it is for the other layers)
            from gateway_milter.mime.view import parse_message

            mime = parse_message(squashed)
        v = build_view(ctx.headers, raw, mime, ctx.mail_from.strip("<>"), view_limit(ctx.policy), ctx.header_gaps)
        v.envelope_guess = ctx.envelope_guessed
        v.trust = trust_config(ctx)
        with _lock:
            _views[ctx] = v
    return v


def trust_config(ctx: MessageContext) -> TrustConfig:
    """The trust boundary for a message: the rules settings' networks; else the gateway's
    trusted networks (policy), unless ``rules.trust_policy_networks`` is off; else none
    (SpamAssassin's inference). ``originating``: the client authenticated (SMTP AUTH); a client
    merely in a trusted network may be a relay forwarding inbound mail, so it is not."""
    return trust_config_for(ctx.policy, ctx.policy_domain, bool(ctx.conn.auth_user))


def trust_config_for(policy: PolicySnapshot, domain: str | None, authenticated: bool = False) -> TrustConfig:
    """:func:`trust_config` from a policy alone: for a stored message learned later (Bayes
    training), whose relays must be read as the milter read them."""
    s = policy.settings_for("rules", domain)
    trusted: tuple[str, ...] = tuple(getattr(s, "trusted_networks", ()))
    internal: tuple[str, ...] = tuple(getattr(s, "internal_networks", ()))
    if not trusted and not internal and getattr(s, "trust_policy_networks", False):
        trusted = tuple(str(n) for n in policy.trusted_networks)
    return TrustConfig(trusted, internal, tuple(getattr(s, "msa_networks", ())), authenticated)
