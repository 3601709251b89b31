"""X-Spam-Status / X-Spam-Score / X-Spam-Flag / X-Spam-Level headers in SpamAssassin's format,
so downstream Sieve filters written for SpamAssassin keep working, and the optional subject tag.

Incoming X-Spam-* headers are removed first: they come from the sender's side and a
downstream filter must never trust them. Every one goes, as SpamAssassin removes every
``^X-Spam-(?!Prev-)`` header (X-Spam-Tests, X-Spam-Bar, X-Spam-Virus, ... not only the names
the gateway writes), and rspamd's bare ``X-Spam`` too (SpamAssassin would keep it, but rspamd
writes ``X-Spam: Yes``, Sieve rules test it and a sender can forge it). They are removed also
when the gateway adds none of its own (``add_headers`` or scoring off), unless
``remove_foreign_headers`` is off (then only the names the gateway writes are replaced). A
sender may repeat one, so every occurrence gets its own delete (libmilter's SMFIR_CHGHEADER
removes the index-th occurrence only).
"""

from __future__ import annotations

import base64
import codecs
import re
from email.header import Header
from typing import TYPE_CHECKING

from gateway_milter import layers as registry
from gateway_milter.layers.scoring import counted_points
from gateway_milter.mime.headers import decode_words
from gateway_milter.transforms import TransformResult
from gateway_milter.verdict import HeaderEdit, delete_all

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext
    from gateway_milter.transforms import TransformServices
    from gateway_milter.verdict import Outcome

SPAM_HEADERS = ("X-Spam-Flag", "X-Spam-Status", "X-Spam-Score", "X-Spam-Level", "X-Spam-Report", "X-Spam-Checker-Version")
VERSION = "Bulwark"
# ctx.facts: on spam with a subject tag set, "added" (the gateway tagged the Subject) or "kept"
# (it arrived tagged, or could not be tagged)
SUBJECT_TAG_FACT = "subject_tag"
# the incoming headers ``remove_foreign_headers`` removes (matched whole, any case): SpamAssassin's
# ^X-Spam-(?!Prev-) (X-Spam-Prev-Subject and the like, a previous filter's saved originals, stay)
# and rspamd's X-Spam
_FOREIGN = re.compile(r"x-spam(?:-(?!prev-)[^:]*)?", re.IGNORECASE)


def is_foreign_spam_header(name: str) -> bool:
    return _FOREIGN.fullmatch(name.strip()) is not None


def foreign_spam_names(ctx: MessageContext) -> list[str]:
    """The names of the incoming X-Spam headers to remove, each once: SPAM_HEADERS first (in
    that order), then the others as they first appear."""
    names = list(SPAM_HEADERS)
    seen = {n.lower() for n in names}
    for n, _ in ctx.headers:
        if n.lower() not in seen and is_foreign_spam_header(n):
            seen.add(n.lower())
            names.append(n)
    return names


def shown_score(is_spam: bool, score: float, required: float) -> str:
    """The score to one decimal, as SpamAssassin shows it (Util::get_tag_value_for_score, its
    bug 6419): a message that is not spam never shows the required score or more (4.96 would
    read 5.0 next to "No", and a downstream rule on X-Spam-Score >= 5 would file it), but
    required - 0.1."""
    shown = f"{score:.1f}"
    if not is_spam and float(shown) >= float(f"{required:.1f}"):
        shown = f"{float(f'{required:.1f}') - 0.1:.1f}"
    return shown


def status_line(is_spam: bool, score: float, required: float, tests: list[str], autolearn: str) -> str:
    """``Yes, score=7.3 required=5.0 tests=A,B autolearn=no autolearn_force=no version=...``
    (``autolearn`` is SpamAssassin's _AUTOLEARN_ tag: ``disabled``, or the answer and its
    ``autolearn_force=``), folded like
    SpamAssassin (its Util::wrap: after a comma or before white space, continuation lines
    indented by a tab, which counts 8 columns as there) so that no line, ``X-Spam-Status: ``
    counted on the first, is over 78 columns where a break allows it. ``tests=`` stays with its first name (a downstream
    filter reading ``tests=(\\S+)`` finds it). The whole value is folded: the ``autolearn=``
    and ``version=`` part was added after the folding, and the header name not counted, so
    lines ran to 100 characters."""
    head = f"{'Yes' if is_spam else 'No'}, score={shown_score(is_spam, score, required)} required={required:.1f}"
    value = f"{head} tests={','.join(tests) if tests else 'none'} autolearn={autolearn} version={VERSION}"
    # libmilter takes bare LF in header values; the MTA writes the line ends
    return _wrap(value, 78 - len("X-Spam-Status: "))


_WRAP_TOKEN = re.compile(r" *[^ ,]+,?|,| +$")


def _wrap(value: str, first_room: int, width: int = 78) -> str:
    lines: list[str] = []
    cur, room = "", first_room
    for tok in _WRAP_TOKEN.findall(value):
        if cur.strip() and tok.strip() and len(cur) + len(tok) > room:
            lines.append(cur)
            cur, room = "\t" + tok.lstrip(" "), width - 7  # (the tab: 8 columns, as Util::wrap counts it)
        else:
            cur += tok
    lines.append(cur)
    return "\n".join(lines)


REPORT_LINES = 40  # symbols in X-Spam-Report at most (the strongest; a line says how many more)
REPORT_DETAIL = 64  # characters of a symbol's description kept
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def report_text(ctx: MessageContext) -> str:
    """SpamAssassin's X-Spam-Report (report_safe 0): a line ``*  2.5 NAME description`` per
    symbol that added points to the total (what it added: the fitted score it counted with),
    the most first; folded onto tab-indented lines. Descriptions may come from the message (an
    address, a domain): kept to printable ASCII, one line, REPORT_DETAIL characters."""
    counted = counted_points(ctx)
    if not counted:
        return ""
    hits = [(counted[id(s)], s) for s in ctx.symbols if counted.get(id(s), 0.0) != 0.0]
    hits.sort(key=lambda h: -h[0])
    lines = []
    for pts, s in hits[:REPORT_LINES]:
        detail = _UNPRINTABLE.sub(" ", s.detail).strip()
        if len(detail) > REPORT_DETAIL:
            detail = detail[:REPORT_DETAIL - 3].rstrip() + "..."
        # (as SpamAssassin writes a score: one decimal, none from 10 points either way)
        shown = f"{pts:4.0f}" if abs(pts) >= 10 else f"{pts:4.1f}"
        lines.append(f"* {shown} {s.name} {detail}".rstrip())
    if len(hits) > REPORT_LINES:
        lines.append(f"* ({len(hits) - REPORT_LINES} more)")
    # libmilter takes bare LF in header values; the MTA writes the line ends. As SpamAssassin's
    # _REPORT_, every entry on a line of its own after an empty first line
    return "".join("\n\t" + line for line in lines)


def without_spam_headers(raw: bytes) -> bytes:
    """``raw`` without the incoming X-Spam fields of its header (those :func:`spam_headers`
    removes with ``remove_foreign_headers``, each with its continuation lines),
    the rest byte for byte: for a quarantined copy, stored as it arrived, that a release
    re-injects past the milter."""
    # the header section ends after the last field's own line end: the empty line and the body
    # stay as they are, whichever field is dropped (the last one too)
    crlf, lf = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
    end = min((i + n for i, n in ((crlf, 2), (lf, 1)) if i >= 0), default=len(raw))
    kept: list[bytes] = []
    dropping = False
    for line in raw[:end].splitlines(keepends=True):
        if line[:1] not in (b" ", b"\t"):
            dropping = b":" in line and is_foreign_spam_header(line.split(b":", 1)[0].decode("latin-1"))
        if not dropping:
            kept.append(line)
    return b"".join(kept) + raw[end:]


def delete_every(ctx: MessageContext, name: str) -> list[HeaderEdit]:
    """One delete per occurrence of ``name`` (matched case-insensitively), the last first so the
    earlier indexes still point at the same headers."""
    return delete_all(name, len(ctx.header_values(name)))


def spam_headers(ctx: MessageContext, outcome: Outcome, services: TransformServices) -> TransformResult | None:
    if "scoring" not in registry.available():
        return None
    settings = ctx.policy.settings_for("scoring", ctx.policy_domain)
    edits = ([e for name in foreign_spam_names(ctx) for e in delete_every(ctx, name)]
             if settings.remove_foreign_headers else [])
    if not settings.enabled or not settings.add_headers:
        return TransformResult(edits) if edits else None
    if not settings.remove_foreign_headers:  # the gateway's own replace the ones of its name
        own = ("X-Spam-Flag", "X-Spam-Status", "X-Spam-Score", "X-Spam-Level") + (
            ("X-Spam-Report",) if settings.add_report else ())  # (not two reports, one of them foreign)
        edits = [e for name in own for e in delete_every(ctx, name)]
    res = ctx.layer("scoring")
    if res.error or res.skipped:
        return TransformResult(edits)
    score = float(res.fact("score", 0.0))
    required = float(res.fact("required", settings.tag_score))
    is_spam = score >= required
    tests = [t for t in res.fact("tests", []) if not t.startswith("SPAM_SCORE_")]
    if res.fact("exempt"):
        # the headers of ham, through the same code (folded, X-Spam-Score and X-Spam-Level too):
        # the layer reports score 0 for exempt mail
        score, is_spam, tests = 0.0, False, ["SCORING_EXEMPT"]
    autolearn = str(res.fact("autolearn", "no"))
    if res.fact("autolearn_force"):  # as SpamAssassin's _AUTOLEARN_ tag: "spam autolearn_force=no"
        autolearn += f" autolearn_force={res.fact('autolearn_force')}"
    edits.append(HeaderEdit("add", "X-Spam-Status", status_line(is_spam, score, required, tests, autolearn)))
    edits.append(HeaderEdit("add", "X-Spam-Score", shown_score(is_spam, score, required)))
    edits.append(HeaderEdit("add", "X-Spam-Level", "*" * max(0, min(50, int(score)))))
    if is_spam:
        edits.append(HeaderEdit("add", "X-Spam-Flag", "YES"))
        if settings.add_report:
            report = report_text(ctx)
            if report:
                edits.append(HeaderEdit("add", "X-Spam-Report", report))
        # (white space around the tag is not part of it: "[SPAM] " is "[SPAM]", as SpamAssassin's
        # rewrite_header reads it; kept, the subject read "[SPAM]  " and was tagged again)
        tag = settings.subject_tag.strip()
        if tag:
            tagging = _subject_tag_edits(ctx, tag)
            # for X-Bulwark-Result (transforms.status): whether the tag on the delivered Subject
            # is the gateway's, which training from a mailbox copy takes off again
            ctx.facts[SUBJECT_TAG_FACT] = "added" if tagging else "kept"
            edits += tagging
    return TransformResult(edits)


def is_tagged(tag: str, subject: str) -> bool:
    """Whether the subject starts with the tag already, as SpamAssassin's rewrite_header reads
    it (``(?:\\Q$tag\\E )?``, case-insensitive): the tag, any case, then white space or the
    end of the value; leading white space and encoded words do not count ("=?UTF-8?Q?[SPAM]_
    Gr=C3=BC=C3=9Fe?=" is tagged). "[spam] hello" is tagged; "[SPAM]foo" is not."""
    text = decode_words(subject).lstrip()
    if text[:len(tag)].lower() != tag.lower():
        return False
    return len(text) == len(tag) or text[len(tag)].isspace()


def _subject_tag_edits(ctx: MessageContext, tag: str) -> list[HeaderEdit]:
    subject = ctx.header("Subject") or ""
    if is_tagged(tag, subject):
        return []
    if has_raw_non_utf8(subject):
        value = tagged_raw_subject(ctx, tag, subject)
        if value is None:
            ctx.add_trace("spamheaders", "subject_tag",
                          "subject left untagged: its raw 8-bit bytes are not UTF-8, the milter "
                          "protocol library sends header values as UTF-8 only, and no charset "
                          "declared by the message reads them")
            return []
    else:
        value = tagged_subject(tag, subject)
    # tagged where it stands (changed in place, the other copies deleted): deleted and added
    # again, it moved to the end, and Bayes's header-order features of a copy learned from a
    # mailbox were not the ones the milter classified
    edits = delete_every(ctx, "Subject")[:-1]
    if ctx.header_values("Subject"):
        edits.append(HeaderEdit("change", "Subject", value, 1))
    else:
        edits.append(HeaderEdit("add", "Subject", value))
    return edits


def has_raw_non_utf8(value: str) -> bool:
    """Raw 8-bit bytes that are not UTF-8 (header values are read as UTF-8 with surrogateescape:
    they are lone surrogates U+DC80-U+DCFF)."""
    return not value.isascii() and any("\udc80" <= c <= "\udcff" for c in value)


def _declared_charsets(ctx: MessageContext) -> list[str]:
    """The charsets the message declares, its own Content-Type first, then its parts'."""
    out: list[str] = []
    try:
        for part in ctx.message.walk():
            cs = part.get_content_charset()
            if cs and cs not in out:
                out.append(cs)
    except Exception:  # noqa: BLE001 - a malformed message declares nothing usable
        pass
    return out


def tagged_raw_subject(ctx: MessageContext, tag: str, subject: str) -> str | None:
    """The tag in front of a Subject of raw 8-bit bytes that are not UTF-8 (koi8-r, cp1252,
    Shift_JIS written unencoded), or None to leave it untagged.

    SpamAssassin puts the tag in front of the raw bytes. A milter cannot: pymilter (1.0.5)
    hands header values to libmilter through ``PyArg_ParseTuple`` format ``s``/``z``, which
    takes a str only and encodes it as strict UTF-8, so a value holding bytes that are not UTF-8
    cannot be sent at all (a lone surrogate raises; before, reading the bytes as ISO-8859-1
    turned koi8-r or Shift_JIS into mojibake and lost them). The bytes are kept instead: the
    value after the tag is written as RFC 2047 encoded words labelled with the first charset the
    message declares (its Content-Type, then its parts') in which the bytes read without error,
    each word's base64 the original bytes exactly, split between whole characters (the charset
    a mail client falls back to for a raw 8-bit header is the body's anyway). Not UTF-8 or
    ASCII (the bytes are not UTF-8), and only when the subject has no encoded words of its own
    (they would be hidden inside the new ones); otherwise None."""
    raw = subject.strip(" \t\r\n").encode("utf-8", "surrogateescape")
    if _ENCODED_WORD.search(subject):
        return None
    for cs in _declared_charsets(ctx):
        words = _encoded_bytes(raw, cs)
        if words is not None:
            return folded("Subject", f"{tag} " + " ".join(words))
    return None


_CHARSET_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'+^_`{}~-]{1,40}")  # (RFC 2047's token, no "*")


def _encoded_bytes(raw: bytes, charset: str) -> list[str] | None:
    """``raw`` as base64 encoded words of ``charset`` of at most 75 characters, each holding
    whole characters, that concatenated give ``raw`` back exactly; None when ``charset`` is
    unknown, UTF-8 or ASCII, or does not read ``raw`` (or not byte for byte)."""
    try:
        name = codecs.lookup(charset).name
        text = raw.decode(name)
    except (LookupError, UnicodeDecodeError, ValueError):
        return None
    if name in ("utf-8", "ascii", "utf-16", "utf-32") or not _CHARSET_TOKEN.fullmatch(charset):
        return None
    room = (75 - len(f"=?{charset}?B??=")) // 4 * 3  # bytes a word holds
    if room < 4:
        return None
    pieces: list[bytes] = []
    cur = b""
    for ch in text:
        try:
            b = ch.encode(name)
        except UnicodeEncodeError:
            return None
        if cur and len(cur) + len(b) > room:
            pieces.append(cur)
            cur = b""
        cur += b
    pieces.append(cur)
    if b"".join(pieces) != raw:  # (a stateful charset, or one whose round trip changes bytes)
        return None
    return [f"=?{charset}?B?{base64.b64encode(p).decode()}?=" for p in pieces]


def tagged_subject(tag: str, subject: str) -> str:
    """The Subject with the tag in front, the value as it stands (raw UTF-8 stays raw UTF-8,
    encoded words stay as they are). Raw 8-bit bytes that are not UTF-8 (kept as lone
    surrogates) cannot go back through the milter as text: :func:`spam_headers` keeps them with
    :func:`tagged_raw_subject` or leaves such a Subject untagged; here (a caller of its own) it
    is decoded as a mail client reads it and written as RFC 2047 encoded words, else adding it
    failed and the message was tempfailed on every attempt."""
    value = f"{tag} {subject}".strip()
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # (Header folds its encoded words at 76 characters itself)
        return Header(f"{tag} {decode_words(subject)}".strip(), "utf-8", header_name="Subject").encode()
    return folded("Subject", encoded_long_words(value, room=998 - len("Subject: ")))


_WORD = re.compile(r"([ \t\r\n]*)([^ \t\r\n]+)")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def encoded_long_words(value: str, room: int) -> str:
    """``value`` with every word too long for a line of its own (over ``room`` octets with its
    white space, which no fold can bring under RFC 5322's 998) written as RFC 2047 encoded
    words of at most 75 characters, separated by single spaces, so that :func:`folded` can
    break between them; the other words stay as they are. A reader decodes the same text: the
    white space between two encoded words is dropped on decoding (RFC 2047 6.2), so where a
    long word stands next to an encoded word, the white space between them goes inside its
    encoded words. Before this, such a word stayed whole and the line stayed over 998, which
    an MTA may refuse or break inside the word. In a value that arrived folded (which
    :func:`folded` leaves as it is), the new encoded words go on lines of their own."""
    words = _WORD.findall(value)
    sep = "\n " if "\n" in value else " "
    if all(len(f"{ws}{word}".encode()) <= room for ws, word in words):
        return value
    trailing = value[sum(len(ws) + len(word) for ws, word in words):]
    long = [len(f"{ws}{word}".encode()) > room for ws, word in words]
    encoded = [is_long or bool(_ENCODED_WORD.fullmatch(word)) for is_long, (_, word) in zip(long, words, strict=True)]
    out: list[str] = []
    for i, (ws, word) in enumerate(words):
        if not long[i]:
            if i and long[i - 1] and encoded[i]:  # (this white space went into the word before)
                ws = sep
            out.append(f"{ws}{word}")
            continue
        text = word
        if i and encoded[i - 1]:
            text, ws = _unfolded(ws) + text, sep
        if i + 1 < len(words) and encoded[i + 1] and not long[i + 1]:
            text += _unfolded(words[i + 1][0])
        pieces = _ENCODED_WORD.findall(Header(text, "utf-8").encode(maxlinelen=76))
        out.append(ws + sep.join(pieces))
    return "".join(out) + trailing


def _unfolded(ws: str) -> str:
    return ws.replace("\r", "").replace("\n", "")


_CHUNK = re.compile(r"[ \t]*[^ \t]+|[ \t]+$")


def folded(name: str, value: str, width: int = 78) -> str:
    """``value`` folded before white space so that no line of the field (``Name: `` counts on
    the first) is longer than ``width`` where white space allows it (RFC 5322 2.1.1: 78
    characters should, 998 must): a subject the tag pushed over 78, or over 998, was one line.
    Unfolding (taking the line breaks out) gives ``value`` back exactly. A value that is
    folded already, or has no white space where it would need a break, is left as it is. Bare
    LF, as libmilter takes header values; the MTA writes the line ends."""
    if "\n" in value or len(name) + 2 + len(value) <= width:
        return value
    lines: list[str] = []
    cur, room = "", width - len(name) - 2
    for chunk in _CHUNK.findall(value):
        if chunk.strip() and cur.strip() and len(cur) + len(chunk) > room:  # (never a line of white space alone)
            lines.append(cur)
            cur, room = chunk, width
        else:
            cur += chunk
    lines.append(cur)
    return "\n".join(lines)
