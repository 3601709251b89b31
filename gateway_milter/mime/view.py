"""The shared MIME view (RFC 2045-2049, RFC 2183, RFC 2231), parsed once per message.

API contract other layers rely on (keep it stable):
- ``parse_message(raw: bytes) -> MimeView`` never raises on malformed input;
- ``MimeView.parts``: every leaf part, depth-first, as :class:`MimePart`;
- ``MimePart.content_type`` (lower-case ``type/subtype``), ``filename`` (decoded, may be ""),
  ``payload`` (decoded bytes), ``text`` (decoded ``str`` for text/* parts, else None),
  ``is_attachment``, ``depth``, ``index``;
- ``MimeView.defects``: list of strings naming parse problems;
- ``MimeView.text`` (all text/plain parts joined) and ``MimeView.html`` (all text/html joined).

Additions (also stable):
- ``MimePart.path`` (child indexes from the root, for transforms), ``filenames`` (every name a
  client could show: filename, filename*, name, encoded words), ``detected_type`` (by content,
  lazily), ``transfer_encoding``, ``charset``, ``disposition``, ``defects``, ``extension``;
- ``MimeView.ambiguities``: :class:`Ambiguity` values (the mime layer turns them into symbols);
- ``MimeView.alternative_payloads()``: decoded content seen under every other interpretation
  of an ambiguous message (antivirus scans them all);
- ``MimeView.archive(part, limits)``: the bounded archive listing of a part, memoised.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Protocol

from gateway_milter.mime import headers as H

if TYPE_CHECKING:
    from gateway_milter.mime.ambiguity import Alternatives
    from gateway_milter.mime.archives import ArchiveLimits, ArchiveReport

MAX_DEPTH = 40  # nesting deeper than this is reported (MIME_TOO_DEEP) and not walked
MAX_PARTS = 2000
ARCHIVE_TIME_PER_MESSAGE_S = 10.0  # all archive listings of one message together

_KNOWN_CTE = {"7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "uuencode", "x-uue", ""}
_DEFECT_AMBIGUITY = {
    "StartBoundaryNotFoundDefect": "MISSING_BOUNDARY",
    "NoBoundaryInMultipartDefect": "MISSING_BOUNDARY",
    "MultipartInvariantViolationDefect": "MISSING_BOUNDARY",
    "InvalidBase64CharactersDefect": "BAD_BASE64",
    "InvalidBase64PaddingDefect": "BAD_BASE64",
    "InvalidBase64LengthDefect": "BAD_BASE64",
    "MissingHeaderBodySeparatorDefect": "MALFORMED_HEADER",
    "InvalidMultipartContentTransferEncodingDefect": "BAD_MULTIPART_ENCODING",
}
_SA_TEXT_B64_DEFECTS = frozenset({"InvalidBase64CharactersDefect", "InvalidBase64PaddingDefect"})


@dataclass(frozen=True, slots=True)
class Ambiguity:
    """One way in which two reasonable parsers could read the message differently."""

    code: str  # DUPLICATE_CONTENT_TYPE, AMBIGUOUS_BOUNDARY, ... (docs/layers/mime.md)
    detail: str = ""
    path: str = ""


@dataclass(slots=True)
class MimePart:
    index: int
    depth: int
    content_type: str
    filename: str
    payload: bytes
    text: str | None
    is_attachment: bool
    headers: list[tuple[str, str]] = field(default_factory=list)
    path: tuple[int, ...] = ()
    filenames: tuple[str, ...] = ()
    transfer_encoding: str = ""
    charset: str = ""
    disposition: str = ""
    defects: list[str] = field(default_factory=list)
    _detected: str | None = None

    @property
    def declared_type(self) -> str:
        return self.content_type

    @property
    def detected_type(self) -> str:
        if self._detected is None:
            from gateway_milter.mime.detect import detect_type, looks_like_text

            if (not self.is_attachment and self.content_type in ("text/plain", "text/html")
                    and looks_like_text(self.payload)):
                # a message body shown as text: no client executes it, and libmagic is costly on text
                self._detected = self.content_type
            else:
                self._detected = detect_type(self.payload)
        return self._detected

    @property
    def extension(self) -> str:
        """Lower-case extension of the displayed name ("" when none)."""
        name = self.filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rstrip(" .")
        return name.rsplit(".", 1)[1].lower() if "." in name else ""

    @property
    def path_str(self) -> str:
        return ".".join(str(i + 1) for i in self.path) or "0"

    @property
    def safe_name(self) -> str:
        return H.safe_filename(self.filename) if self.filename else ""


@dataclass(slots=True)
class MimeView:
    message: Message
    parts: list[MimePart]
    defects: list[str]
    raw: bytes = b""
    ambiguities: list[Ambiguity] = field(default_factory=list)
    max_depth: int = 0
    # the containers (multipart/*, message/* the parser read as a message), pre-order: (path,
    # content type, header fields); with ``parts`` (the leaves) every node of the tree
    containers: list[tuple[tuple[int, ...], str, list[tuple[str, str]]]] = field(default_factory=list)
    _alternatives: Alternatives | None = None
    _archives: dict[tuple[bytes, ArchiveLimits], ArchiveReport] = field(default_factory=dict)
    _archive_seconds: float = 0.0

    @property
    def text(self) -> str:
        return "\n".join(p.text or "" for p in self.parts if p.content_type == "text/plain" and not p.is_attachment)

    @property
    def html(self) -> str:
        return "\n".join(p.text or "" for p in self.parts if p.content_type == "text/html" and not p.is_attachment)

    @property
    def is_ambiguous(self) -> bool:
        return bool(self.ambiguities)

    @property
    def attachments(self) -> list[MimePart]:
        return [p for p in self.parts if p.is_attachment]

    def alternatives(self) -> Alternatives:
        """Payloads under every other interpretation (computed once, only when asked)."""
        if self._alternatives is None:
            from gateway_milter.mime.ambiguity import alternative_payloads

            known = {p.payload for p in self.parts}
            self._alternatives = alternative_payloads(self.raw, known)
        return self._alternatives

    def alternative_payloads(self) -> list[bytes]:
        return self.alternatives().payloads

    def archive(self, part: MimePart, limits: ArchiveLimits | None = None) -> ArchiveReport | None:
        """The bounded listing of ``part`` if its content is an archive, else None (memoised)."""
        return self.archive_of(part.payload, part.detected_type, part.safe_name, limits)

    def archive_of(self, data: bytes, detected: str, name: str = "",
                   limits: ArchiveLimits | None = None) -> ArchiveReport | None:
        """As :meth:`archive`, for any payload (alternative readings too); memoised by content."""
        from gateway_milter.mime.archives import ArchiveLimits, inspect_archive
        from gateway_milter.mime.detect import archive_kind
        from gateway_milter.mime.office import has_macros

        kind = archive_kind(detected)
        if kind is None:
            return None
        limits = limits or ArchiveLimits()
        key = (hashlib.blake2b(data, digest_size=16).digest(), limits)
        rep = self._archives.get(key)
        if rep is None:
            left = max(0.0, ARCHIVE_TIME_PER_MESSAGE_S - self._archive_seconds)
            rep = inspect_archive(data, kind, name or kind, limits, has_macros, left)
            self._archive_seconds += rep.ms / 1000
            self._archives[key] = rep
        return rep


class _Walk(Protocol):
    def __call__(self, m: Message, depth: int, path: tuple[int, ...], recurse: _Walk) -> None: ...


def _parse_params(s: str) -> list[str]:
    """``email.message._parseparam`` of Python 3.11, the same list in time linear in the value:
    the standard library cuts each parameter off the rest of the value (a copy) and counts the
    quotes before each ``;`` from the parameter's start again, so that a Content-Type of many
    ``;`` (inside quotes: 60 KB, 4 s of the message view) took time square in its length. Here
    each ``;`` is reached once, the quotes between two of them counted once (a ``\\"`` cannot
    straddle a ``;``)."""
    s = ";" + s
    plist: list[str] = []
    n = len(s)
    pos = 0  # at a ";" (the standard library's ``s[:1] == ';'``)
    while pos < n and s[pos] == ";":
        start = pos + 1
        end = s.find(";", start)
        odd = 0
        counted = start
        while end > start:  # (its ``end > 0``, end counted from the parameter's start)
            odd += s.count('"', counted, end) - s.count('\\"', counted, end)
            counted = end
            if odd % 2 == 0:
                break
            end = s.find(";", end + 1)
        if end < 0:
            end = n
        f = s[start:end]
        if "=" in f:
            i = f.index("=")
            f = f[:i].strip().lower() + "=" + f[i + 1:].strip()
        plist.append(f.strip())
        pos = end
    return plist


class _Message(Message):
    """The standard library's message, its parameters split by :func:`_parse_params` (the
    parameter getters: charset, boundary, file name)."""

    def _get_params_preserve(self, failobj: object, header: str) -> object:
        missing = object()
        value = self.get(header, missing)
        if value is missing:
            return failobj
        params = []
        # unfolded first (RFC 5322 2.2.3: a line break before white space goes, the white space
        # stays), as mail readers and SpamAssassin read it: a boundary folded inside its quotes
        # (boundary="simple\r\n boundary") was no boundary, and every part one text part
        for p in _parse_params(H.unfold(str(value))):
            name, eq, val = p.partition("=")
            params.append((name.strip(), val.strip()) if eq else (p.strip(), ""))
        return email.utils.decode_params(params)


def parse_message(raw: bytes) -> MimeView:
    try:
        msg = email.message_from_bytes(raw, _Message, policy=email.policy.compat32)
    except Exception as e:  # noqa: BLE001 - the stdlib parser itself fails on some hostile input
        # e.g. thousands of nested multiparts (RecursionError), or "boundary*=a; boundary*0=b"
        # (TypeError in email.utils.decode_params). Keep the headers; our lenient walker still
        # reads the body for antivirus (alternatives()).
        from email.parser import BytesHeaderParser

        msg = BytesHeaderParser(_Message, policy=email.policy.compat32).parsebytes(raw)
        code = "TOO_DEEP" if isinstance(e, RecursionError) else "UNPARSEABLE"
        return MimeView(msg, [], [type(e).__name__], raw, [Ambiguity(code, f"stdlib parser: {type(e).__name__}", "0")],
                        MAX_DEPTH + 1 if code == "TOO_DEEP" else 0)
    parts: list[MimePart] = []
    containers: list[tuple[tuple[int, ...], str, list[tuple[str, str]]]] = []
    defects = [type(d).__name__ for d in msg.defects]
    ambiguities: list[Ambiguity] = []
    declared_boundaries: list[str] = []
    deepest = 0

    def note(code: str, detail: str, path: tuple[int, ...]) -> None:
        a = Ambiguity(code, detail[:200], ".".join(str(i + 1) for i in path) or "0")
        if len(ambiguities) < 100 and a not in ambiguities:  # (the bound first: 50,000 parts noted)
            ambiguities.append(a)

    def check_headers(m: Message, path: tuple[int, ...], fields: list[tuple[str, str]]) -> list[str]:
        by_name: dict[str, list[str]] = {}  # (one pass over the fields, not one per name)
        for n, v in fields:
            by_name.setdefault(n.lower(), []).append(v)
        cts = by_name.get("content-type", [])
        ctes = by_name.get("content-transfer-encoding", [])
        if len(cts) > 1 and len({H.media_type(v) + str(H.split_params(v)) for v in cts}) > 1:
            note("DUPLICATE_CONTENT_TYPE", " | ".join(cts), path)
        if len(ctes) > 1 and len({v.strip().lower() for v in ctes}) > 1:
            note("DUPLICATE_TRANSFER_ENCODING", " | ".join(ctes), path)
        for v in ctes:
            if H.strip_comments(v).strip().lower() not in _KNOWN_CTE:
                note("UNKNOWN_TRANSFER_ENCODING", v, path)
        for v in cts:
            if H.has_comment(v):
                note("HEADER_COMMENT", v, path)
        if any(H.media_type(v).startswith("multipart/") for v in cts):
            cands = H.boundary_candidates(cts)
            declared_boundaries.extend(cands)
            if len(cands) > 1:
                note("AMBIGUOUS_BOUNDARY", ", ".join(cands), path)
            if any(n.startswith("boundary*") for v in cts for n, _ in H.split_params(v)):
                note("RFC2231_BOUNDARY", " | ".join(cts), path)
        dispositions = by_name.get("content-disposition", [])
        if len(dispositions) > 1 and len({v.strip().lower() for v in dispositions}) > 1:
            note("DUPLICATE_DISPOSITION", " | ".join(dispositions), path)
        return H.filename_candidates(dispositions, cts)

    # walk is handed itself to recurse with: a nested function that called itself by name would
    # be a reference cycle (function -> closure -> function), which keeps the parts' payloads
    # until the next garbage collection instead of freeing them with the view
    def walk(m: Message, depth: int, path: tuple[int, ...], recurse: _Walk) -> None:
        nonlocal deepest
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            note("TOO_DEEP", f"nesting deeper than {MAX_DEPTH}", path)
            return
        fields = _raw_fields(m)  # (once per part: decoding them is a third of the walk's time)
        names = check_headers(m, path, fields)
        if m.is_multipart():
            containers.append((path, m.get_content_type(), fields))
            _check_outside(m, path, note)
            for i, sub in enumerate(m.get_payload() or []):
                if isinstance(sub, Message):
                    defects.extend(type(d).__name__ for d in sub.defects)
                    for d in sub.defects:
                        if type(d).__name__ in _DEFECT_AMBIGUITY:
                            note(_DEFECT_AMBIGUITY[type(d).__name__], type(d).__name__, path + (i,))
                    try:
                        recurse(sub, depth + 1, path + (i,), recurse)
                    except RecursionError:
                        raise
                    except Exception as e:  # noqa: BLE001 - a stdlib accessor failing on a hostile part
                        # that part is not read; its siblings still are (they reach the content checks)
                        note("UNPARSEABLE", f"stdlib parser: {type(e).__name__}", path + (i,))
            return
        if len(parts) >= MAX_PARTS:
            note("TOO_MANY_PARTS", f"more than {MAX_PARTS} parts", path)
            return
        ctype = m.get_content_type()
        if ctype.startswith("multipart/"):
            # a multipart whose boundary never appears (MISSING_BOUNDARY): its body is read as
            # plain text, as SpamAssassin's parser and mail readers read it, so that content
            # checks see the text a reader shows
            ctype = "text/plain"
        before = len(m.defects)
        try:
            decoded = m.get_payload(decode=True)
            payload = decoded if isinstance(decoded, bytes) else b""
        except Exception:  # noqa: BLE001 - malformed encodings give raw bytes
            payload = str(m.get_payload()).encode("utf-8", "surrogateescape")
        part_defects = [type(d).__name__ for d in m.defects[before:]]
        if "InvalidBase64LengthDefect" in part_defects or (
                ctype.startswith("text/") and _SA_TEXT_B64_DEFECTS.intersection(part_defects)):
            # the standard library gives the encoded text back; mail readers and SpamAssassin
            # decode what is there (a list footer appended after the base64 body, a cut line).
            # A text whose base64 holds bytes outside the alphabet or padding inside it (a list
            # footer after the padding): the standard library stops at the padding, SpamAssassin
            # decodes the footer's letters too, and the rules read that text; an attachment keeps
            # the standard library's bytes (the file as sent, for the antivirus and its hashes)
            from gateway_milter.mime.ambiguity import sa_base64

            raw_body = m.get_payload(decode=False)
            payload = sa_base64(raw_body.encode("latin-1", "replace") if isinstance(raw_body, str) else b"")
        for name in part_defects:
            if name in _DEFECT_AMBIGUITY:
                note(_DEFECT_AMBIGUITY[name], name, path)
        if ctype.startswith("text/") and b"begin " in payload:
            from gateway_milter.mime.ambiguity import uuencoded_files

            for name, _ in uuencoded_files(payload)[:5]:
                note("HIDDEN_PART", f"uuencoded file {H.safe_filename(name)} in a text part", path)
        cte = str(m.get("Content-Transfer-Encoding") or "").strip().lower()
        if cte == "quoted-printable" and _bad_qp(m):
            note("BAD_QUOTED_PRINTABLE", "invalid =XX escape", path)
        text = None
        charset = ""
        if ctype.startswith("text/"):
            charset = H.content_charset(m, "utf-8")
            text = H.bytes_as_text(payload, charset)  # (unknown, bytes-to-bytes or strict codecs: UTF-8)
        filename = names[0] if names else ""
        all_names = tuple(names)
        if len({n.casefold() for n in all_names}) > 1:
            note("CONFLICTING_FILENAMES", " | ".join(all_names), path)
        disp_values = [v for n, v in fields if n.lower() == "content-disposition"]
        disp = H.strip_comments(disp_values[0] if disp_values else "").split(";")[0].strip().lower()
        parts.append(MimePart(len(parts), depth, ctype, filename, payload, text,
                              disp == "attachment" or bool(filename), fields, path,
                              all_names, cte, charset, disp, part_defects))

    for d in msg.defects:
        if type(d).__name__ in _DEFECT_AMBIGUITY:
            note(_DEFECT_AMBIGUITY[type(d).__name__], type(d).__name__, ())
    try:
        walk(msg, 0, (), walk)
    except RecursionError:
        note("TOO_DEEP", "recursion limit", ())
    except Exception as e:  # noqa: BLE001 - a stdlib accessor failing on hostile headers
        note("UNPARSEABLE", f"stdlib parser: {type(e).__name__}", ())
    from gateway_milter.mime.ambiguity import hidden_delimiters

    try:
        for token in hidden_delimiters(raw, declared_boundaries):
            note("HIDDEN_PART", f"delimiter --{token} is not a declared boundary", ())
    except Exception as e:  # noqa: BLE001 - never raise on hostile input
        note("UNPARSEABLE", f"delimiter scan: {type(e).__name__}", ())
    return MimeView(msg, parts, defects, raw, ambiguities, deepest, containers)


def _raw_fields(m: Message) -> list[tuple[str, str]]:
    """Header fields as text: 8-bit bytes read as UTF-8 (RFC 6532) instead of the stdlib's
    replacement characters, so that names with bidi controls or accents are seen as sent."""
    return [(n, H.fix_8bit(str(v))) for n, v in m.raw_items()]


def _check_outside(m: Message, path: tuple[int, ...], note: Callable[[str, str, tuple[int, ...]], None]) -> None:
    """Delimiters in the preamble or after the close delimiter: a lenient client may show a
    part there that a strict parser drops."""
    boundary = H.boundary_param(m)
    if not boundary:
        return
    delim = re.compile(r"^--" + re.escape(boundary) + r"(--)?[ \t]*\r?$", re.MULTILINE)
    for where, text in (("after the close delimiter", m.epilogue), ("in the preamble", m.preamble)):
        if text and delim.search(text):
            note("HIDDEN_PART", f"a part {where}", path)


def _bad_qp(m: Message) -> bool:
    body = m.get_payload(decode=False)
    if not isinstance(body, str):
        return False
    return re.search(r"=(?![0-9A-Fa-f]{2}|\r?\n|[ \t]*$)", body, re.MULTILINE) is not None
