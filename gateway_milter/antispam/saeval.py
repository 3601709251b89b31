"""The SpamAssassin eval functions we implement, following the Perl plugins' definitions
(Mail::SpamAssassin::Plugin::{HeaderEval,BodyEval,HTMLEval,FreeMail,Bayes,WLBLEval}).

An eval rule whose function is not here is listed by ``rules check`` as unsupported and never
runs. Each function takes the message view, the rule's arguments and the engine's extras and
returns a hit count (0 = no hit).
"""

from __future__ import annotations

import math
import re
import calendar
from datetime import date as date_cls
from collections import Counter
from collections.abc import Callable
from typing import Any

from gateway_milter.antispam.htmltext import FLAG_FACTS, NUMERIC_FACTS, STRING_FACTS, HtmlFacts
from gateway_milter.antispam.parseflags import OFFERED as PARSE_FLAGS_OFFERED, parse_flags
from gateway_milter.antispam.perlre import PatternError, octets, translate
from gateway_milter.antispam.relays import IP, is_private_ip
from gateway_milter.antispam.saview import _PERL_WS, SaMessage, body_lines, short_paragraphs
from gateway_milter.antispam.urls import org_domain
from gateway_milter.auth.psl import is_tld

EvalFn = Callable[[SaMessage, tuple[Any, ...], dict[str, Any]], int]
EVALS: dict[str, EvalFn] = {}


def _eval(name: str) -> Callable[[EvalFn], EvalFn]:
    def deco(fn: EvalFn) -> EvalFn:
        EVALS[name] = fn
        return fn
    return deco


# Arguments we implement for the evals that take a test name; other tests are unsupported
# (listed by ``rules check``) rather than silently false.
SUPPORTED_TESTS: dict[str, set[str] | frozenset[str]] = {
    "html_range": NUMERIC_FACTS,
    "html_eval": NUMERIC_FACTS,
    "html_test": FLAG_FACTS | {"html"},
    "html_text_match": STRING_FACTS,
    "html_text_not_match": STRING_FACTS,
    "check_for_mime": {"mime_qp_count", "mime_base64_count", "mime_base64_encoded_text", "mime_qp_long_line",
                       "mime_attachment", "mime_bad_iso_charset", "mime_faraway_charset", "mimepart_limit_exceeded"},
    "check_freemail_replyto": {"replyto", "reply"},
    "check_msg_parse_flags": PARSE_FLAGS_OFFERED,  # (not missing_head_body_separator: parseflags.py says why)
}


def unsupported_reason(fn: str, kind: str, args: tuple[Any, ...] = ()) -> str | None:
    if fn not in EVALS:
        return f"eval function {fn}() is not implemented"
    tests = SUPPORTED_TESTS.get(fn)
    if fn == "check_msg_parse_flags" and args and str(args[0]) == "missing_head_body_separator":
        return ("check_msg_parse_flags('missing_head_body_separator'): the MTA parses the header section "
                "before the milter sees it, so whether the message had its empty line is not known here")
    if tests is not None and (not args or str(args[0]) not in tests):
        return f"eval {fn}({args[0] if args else ''!r}) is not implemented"
    if fn in ("html_eval", "html_tag_balance") and (len(args) < 2 or _comparison(args[1]) is None):
        return f"eval {fn}() with the expression {args[1] if len(args) > 1 else ''!r} is not implemented"
    at = REGEX_ARG.get(fn)
    if at is not None and len(args) > at:
        try:
            _arg_regex(str(args[at]))  # (compiled here, once: the messages find it cached)
        except PatternError as e:
            return f"eval {fn}(): its regular expression {str(args[at])!r} {e}"
    return None


# the evals whose argument at this position is a regular expression (FreeMail's compile_regexp)
REGEX_ARG = {"check_freemail_from": 0, "check_freemail_header": 1}
_arg_rx_cache: dict[str, Any] = {}


def _arg_regex(pattern: str) -> Any:
    """An eval argument's regular expression, translated from Perl as the rules' are (raises
    PatternError for one that does not compile)."""
    rx = _arg_rx_cache.get(pattern)
    if rx is None:
        rx = _arg_rx_cache[pattern] = translate(pattern, "").compiled
    return rx


def _f(v: Any, default: float = 0.0) -> float:
    if v in ("undef", None, ""):
        return default
    if v == "inf":
        return math.inf
    return float(v)


# -- Bayes (value supplied by the bayes layer) --------------------------------------------------
@_eval("check_bayes")
def check_bayes(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    p = extra.get("bayes_probability")
    if p is None:
        return 0
    lo, hi = _f(args[0]), _f(args[1], 1.0)
    return int(lo <= p <= hi) if hi >= 1.0 else int(lo <= p < hi)


# -- BodyEval -------------------------------------------------------------------------------------
@_eval("check_body_length")
def check_body_length(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # BodyEval: the body's length in bytes as it came (pristine_body_length), at most the
    # argument
    return int(m.body_len <= _f(args[0]))


_NOT_LOWER = bytes(c for c in range(256) if not (97 <= c <= 122 or 48 <= c <= 57))  # a-z and digits
_NOT_UPPER = bytes(c for c in range(256) if not 65 <= c <= 90)
_INNER_SPACE = re.compile(r"\S\s+\S", re.A)
_BASE64_LINE = re.compile(r"^(?:[A-Za-z0-9+/=]{60,76} ){2}")
_SHIFT_JIS = re.compile(r"\x1b\$B.*\x1b\(B", re.S)
# MIMEEval's CHARSETS_LIKELY_TO_FP_AS_CAPS: scripts without case, where "upper case" means nothing
_CAPS_FP_CHARSET = re.compile(r"[-_a-z0-9]*(?:koi|jp|jis|euc|gb|big5|isoir|cp1251|windows-1251|georgianps|pt154|tis)"
                              r"[-_a-z0-9]*", re.I)
_CAPS_FP_WORD = re.compile(r"=\?" + _CAPS_FP_CHARSET.pattern + r"\?", re.I)
_CT_CHARSET = (re.compile(r'charset="([^"]+)"', re.I), re.compile(r"charset='([^']+)'", re.I),
               re.compile(r"charset=(\S+)", re.I))


def _ct_charset(value: str) -> str | None:
    """MIMEEval's get_charset_from_ct_line."""
    for rx in _CT_CHARSET:
        found = rx.search(value)
        if found:
            return found.group(1)
    return None


def _charset_likely_to_fp_as_caps(m: SaMessage) -> bool:
    """MIMEEval's body_charset_is_likely_to_fp: the message's or any part's charset is one of
    Japanese, Chinese, Korean, Cyrillic, Georgian or Thai."""
    values = [m.header("Content-Type") or ""]
    values += [v for hs in m.part_headers for n, v in hs if n.lower() == "content-type"]
    for v in values:
        cs = _ct_charset(v)
        if cs is not None and _CAPS_FP_CHARSET.fullmatch(cs.strip("\"';")):
            return True
    return False


@_eval("check_for_uppercase")
def check_for_uppercase(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    """MIMEEval: the share of upper-case letters among letters and digits, over the body lines
    (Subject first, UTF-8 octets) that hold a space between two other characters, base64-looking
    lines skipped; none below 200 bytes of such lines, nor in a charset without case."""
    pct: float | None = m.cache.get("uppercase")
    if pct is None:
        pct = 0.0
        if not _charset_likely_to_fp_as_caps(m):
            kept = [line for line in body_lines(m)
                    if _INNER_SPACE.search(line) is not None and not _BASE64_LINE.match(line)]
            raw = "".join(_SHIFT_JIS.sub("", x) if "\x1b" in x else x for x in kept).encode("latin-1", "replace")
            length = len(raw)
            lower = len(raw.translate(None, _NOT_LOWER))
            upper = len(raw.translate(None, _NOT_UPPER))
            if length >= 200 and upper + lower:
                pct = upper * 100.0 / (upper + lower)
        m.cache["uppercase"] = pct
    return int(_f(args[0]) < pct <= _f(args[1]))


@_eval("tvd_vertical_words")
def tvd_vertical_words(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # BodyEval: the highest percentage of spaces to other bytes over the body's lines longer
    # than 5 bytes, newline included ("v e r t i c a l" words); -1 when none
    pct = m.cache.get("tvd_vertical_words")
    if pct is None:
        pct = -1
        for line in body_lines(m):
            n = len(line)
            if n <= 5:
                continue
            spaces = line.count(" ")
            nonspaces = n - spaces
            p = 100 if spaces > nonspaces or nonspaces == 0 else 100 * spaces // nonspaces
            pct = max(pct, p)
        m.cache["tvd_vertical_words"] = pct
    lo, hi = _f(args[0]), _f(args[1])
    if hi >= 100:
        hi = 101.0
    return int(lo <= pct < hi)


# the rendered parts are characters to SpamAssassin (normalize_charset): Perl's Unicode \s and
# \w, so a CJK or accented word counts and an ideographic space splits
_PERL_SPACE = re.compile(f"[{_PERL_WS}]+")
_PERL_WORD = re.compile(r"\w")


def _madiff(m: SaMessage) -> tuple[float, int, int]:
    """BodyEval's _multipart_alternative_difference: over each multipart/alternative part, the
    share of the HTML part's distinct words that the text part does not have as often (the
    largest, in %), and the distinct HTML and text words of the last one with any HTML words."""
    got = m.cache.get("madiff")
    if got is None:
        diff, n_html, n_text = 0.0, 0, 0
        for group in m.alternatives:
            html: Counter[str] = Counter()
            text: Counter[str] = Counter()
            for ctype, rendered, has_img in group:
                words = [w for w in _PERL_SPACE.split(rendered) if _PERL_WORD.search(w)]
                if ctype == "text/html":
                    html.update(words)
                    if not html and has_img:
                        html["\n"] = 1  # no words but an image: SpamAssassin's mark
                else:
                    text.update(words)
            orig = len(html)
            if orig == 0:
                continue
            n_html, n_text = orig, len(text)
            left = sum(1 for k, v in html.items() if not (k in text and v - text[k] < 1))
            diff = max(diff, left / orig * 100)
        got = m.cache["madiff"] = (diff, n_html, n_text)
    return got  # type: ignore[no-any-return]


@_eval("multipart_alternative_difference")
def multipart_alternative_difference(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    diff = _madiff(m)[0]
    lo = _f(args[0]) if args else 0.0
    hi = args[1] if len(args) > 1 else "undef"
    return int((lo == 0 or diff > lo) and (hi in ("undef", None, "") or diff <= _f(hi)))


@_eval("multipart_alternative_difference_count")
def multipart_alternative_difference_count(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    _diff, n_html, n_text = _madiff(m)
    if not n_html > _f(args[1] if len(args) > 1 else 0):
        return 0
    return int(n_text / n_html > _f(args[0] if args else 0))


@_eval("check_blank_line_ratio")
def check_blank_line_ratio(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # BodyEval: % of blank lines in the decoded text parts (text/calendar left out); -1 when
    # there are fewer than minlines lines
    lo, hi = _f(args[0]), _f(args[1])
    minlines = max(1, int(_f(args[2], 1))) if len(args) > 2 else 1
    key = f"blank_line_ratio:{minlines}"
    ratio = m.cache.get(key)
    if ratio is None:
        blank = lines = 0
        for ctype, text in m.text_parts:
            if ctype == "text/calendar" or not text:
                continue
            # Perl's split /^/m: a line per newline, the last one without it if not empty
            for line in text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"):
                lines += 1
                blank += not line.strip(" \t\r\x0b\x0c")
        ratio = m.cache[key] = -1.0 if lines < minlines else 100 * blank / lines
    return int((lo == 0 and ratio <= hi) or (lo < ratio <= hi))


_STOCK_LINE = re.compile(r"^\s*([^:\s][^:\n]{2,29})\s*:\s*\S", re.M)
_STOCK_WORD = re.compile(r"^(trad(?:e|ing)date|company(?:name)?|s\w?(?:t\w?o\w?c\w?k|y\w?m(?:\w?b\w?o\w?l)?)|"
                         r"t(?:arget|icker)|(?:opening|current)p(?:rice)?|p(?:rojected|osition)|expectations|"
                         r"weeks?high|marketperformance|(?:year|week|month|day|price)(?:target|estimates?)|sector|"
                         r"r(?:ecommendation|ating))$")


@_eval("check_stock_info")
def check_stock_info(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # BodyEval: distinct stock-tip labels ("Symbol:", "Target price:") in the first text/plain part
    found = m.cache.get("stock_info")
    if found is None:
        hits: set[str] = set()
        first = next((t for ctype, t in m.text_parts if ctype == "text/plain"), None)
        for chunk in short_paragraphs(first) if first is not None else []:
            for label in _STOCK_LINE.findall(chunk):
                word = "".join(c for c in label.lower() if "a" <= c <= "z")
                hit = _STOCK_WORD.match(word)
                if hit:
                    hits.add(hit.group(1))
        found = m.cache["stock_info"] = len(hits)
    least = _f(args[0]) if args else 0
    return int(least == 0 or found >= least)


# -- HeaderEval -----------------------------------------------------------------------------------
@_eval("subject_is_all_caps")
def subject_is_all_caps(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    """HeaderEval: the Subject (reply and forward prefixes off) has white space, at least 10
    bytes, and its ASCII letters are all upper case; not when it is encoded in a charset
    without case."""
    s = re.sub(r"^(?:(?:Re|Fwd|Fw|Aw|Antwort|WG|SV|VB|VS|VL):\s*)+", "", (m.header("Subject") or "").strip(), flags=re.I)
    if re.search(r"\s", s) is None or len(octets(s)) < 10:
        return 0
    letters = re.sub(r"[^a-zA-Z]", "", s)
    if _CAPS_FP_WORD.search(m.header("Subject:raw") or ""):
        return 0
    return int(bool(letters) and letters == letters.upper())


@_eval("check_header_count_range")
def check_header_count_range(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    n = m.header_count(str(args[0]))
    return int(_f(args[1]) <= n <= _f(args[2], math.inf))


@_eval("check_illegal_chars")
def check_illegal_chars(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HeaderEval: ratio and count of 8-bit characters in the raw header(s); known 8-bit headers skipped
    name, ratio, count = str(args[0]), _f(args[1]), _f(args[2])
    if name == "ALL":
        skip = ("subject", "from", "to", "cc", "x-face")
        value = "".join(v for n, v in m.raw_headers if n.lower() not in skip)
    else:
        value = m.header(f"{name}:raw") or ""
    if not value:
        return 0
    illegal = sum(1 for c in value if ord(c) > 127)
    return int(illegal / len(value) > ratio and illegal >= count)


@_eval("check_for_shifted_date")
def check_for_shifted_date(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HeaderEval: Date: minus the Received header time closest to it, in hours
    if "date_shift" not in m.cache:  # a dozen rules ask, with different ranges
        m.cache["date_shift"] = _date_shift(m)
    diff: float = m.cache["date_shift"]
    lo = _f(args[0], -math.inf)
    hi = _f(args[1], math.inf)
    return int(lo <= diff < hi)


_RCVD_TIME = re.compile(r"(\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+)")
_RCVD_LOCAL = re.compile(r"\bfrom (?:localhost\s|(?:\S+ ){1,2}\S*\b127\.0\.0\.1\b)|qmail \d+ invoked by uid \d+")
_RCVD_FETCHMAIL = re.compile(r"\bby localhost with \w+ \(fetchmail-[\d.]+")


def _date_shift(m: SaMessage) -> float:
    """HeaderEval::_check_date_diff, in hours: the Date (a Resent-Date first) minus each
    Received header's time, the newest a local or fetchmail hand-over skipped; the oldest
    dropped when it equals the Date and others are left; the difference smallest in size.
    0 without a Date or Received times (then no range that excludes 0 hits)."""
    date = None
    for name in ("resent-date", "date"):
        for value in m._values(m.headers, name):
            if value:
                date = parse_rfc822_date(value)
                if date is not None:
                    break
        if date is not None:
            break
    if date is None:
        return 0.0
    received = [v for v in m._values(m.headers, "received") if v.strip()]
    local = []
    if received and _RCVD_LOCAL.search(received[0]):
        local.append(received.pop(0))
    if received and _RCVD_FETCHMAIL.search(received[0]):
        local.append(received.pop(0))
    elif local:
        received.insert(0, local.pop(0))
    times = []
    for value in received:
        hit = _RCVD_TIME.search(value)
        t = parse_rfc822_date(hit.group(1)) if hit else None
        if t is not None:
            times.append(t)
    if not times:
        return 0.0
    diffs = [date - t for t in times]
    if len(diffs) > 1 and diffs[-1] == 0:
        diffs.pop()
    return min(diffs, key=abs) / 3600.0  # (the first of equal sizes, as Perl's stable sort)


_TEMPLATE_VAR = re.compile(r"%[A-Z][A-Z_-]")
_TEMPLATE_OK = re.compile(r"^(?:X-VMS-To|X-UIDL|X-Face|To|Cc|From|Subject|References|In-Reply-To|"
                          r"(?:X-|Resent-|X-Original-)?Message-Id):", re.I)


@_eval("check_unresolved_template")
def check_unresolved_template(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    all_ = m.header("ALL:raw") or ""
    if _TEMPLATE_VAR.search(all_) is None:  # the usual case: one search, no line loop
        return 0
    for line in all_.splitlines():
        if _TEMPLATE_VAR.search(line) and not _TEMPLATE_OK.match(line):
            return 1
    return 0


# -- HTMLEval -------------------------------------------------------------------------------------
# Every HTML part has its own facts (htmltext.HtmlFacts); like SpamAssassin, a test hits when
# one of the parts passes it.
_COMPARISON = re.compile(r"^\s*(<|<=|>|>=|==|!=)\s*([-+]?\d+)\s*$")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _comparison(expr: Any) -> tuple[Callable[[float, float], bool], float] | None:
    """``'< 384'``, ``'!= 0'``: the Perl expression SpamAssassin evaluates after the value."""
    mm = _COMPARISON.match(str(expr))
    return (_COMPARE[mm.group(1)], float(mm.group(2))) if mm else None


@_eval("html_tag_exists")
def html_tag_exists(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # a start or end tag of that name anywhere
    tag = str(args[0])
    return int(any(tag in h.inside for h in m.html_all))


@_eval("html_tag_balance")
def html_tag_balance(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # start tags minus end tags of a tag (never below 0) compared, e.g. '!= 0': left open
    tag = str(args[0])
    cmp = _comparison(args[1])
    if cmp is None or not re.fullmatch(r"[a-zA-Z0-9]+", tag):
        return 0
    op, n = cmp
    return int(any(tag in h.inside and op(h.inside[tag], n) for h in m.html_all))


@_eval("html_image_only")
def html_image_only(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # an HTML part with an <img> whose length (the HTML as written) is in (min, max]
    lo, hi = _f(args[0]), _f(args[1])
    return int(any("img" in h.inside and lo < h.length <= hi for h in m.html_all))


@_eval("html_image_ratio")
def html_image_ratio(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # non-space characters of the text per unit of image area, in (min, max]
    lo, hi = _f(args[0]), _f(args[1])
    return int(any(h.image_area > 0 and lo < h.non_space_len / h.image_area <= hi for h in m.html_all))


@_eval("html_range")
def html_range(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # a numeric fact in (min, max]; max 'inf' (or absent): above min
    test, lo = str(args[0]), _f(args[1])
    hi = args[2] if len(args) > 2 else "inf"
    for h in m.html_all:
        value = h.value(test)
        if value is None:
            continue
        if hi == "inf":
            if value > lo:
                return 1
        elif lo < value <= _f(hi):
            return 1
    return 0


@_eval("html_eval")
def html_eval(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    cmp = _comparison(args[1]) if len(args) > 1 else None
    if cmp is None:
        return 0
    op, n = cmp
    for h in m.html_all:
        value = h.value(str(args[0]))
        if value is not None and op(value, n):
            return 1
    return 0


@_eval("html_test")
def html_test(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # 'html': an HTML part was parsed; the others are flags the parse raised
    test = str(args[0])
    if test == "html":
        return int(bool(m.html_all))
    return int(any(getattr(h, test) for h in m.html_all))


def _html_strings(h: HtmlFacts, text: str) -> list[str]:
    return h.comments if text == "comment" else h.titles if text == "title" else h.anchors


@_eval("html_text_match")
def html_text_match(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # a comment ("<!--...-->" as written), a <title> or an anchor text matching the expression
    if len(args) < 2:
        return 0
    rx = _compiled(str(args[1]))
    return int(any(rx.search(t) for h in m.html_all for t in _html_strings(h, str(args[0]))))


@_eval("html_text_not_match")
def html_text_not_match(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    if len(args) < 2:
        return 0
    rx = _compiled(str(args[1]))
    return int(any(not rx.search(t) for h in m.html_all for t in _html_strings(h, str(args[0]))))


@_eval("html_title_subject_ratio")
def html_title_subject_ratio(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # the longest <title> of a part is more than ratio times as long as the Subject (its
    # newline included, as SpamAssassin's get() returns it)
    subject = _get(m, "Subject")
    if not subject:
        return 0
    ratio = _f(args[0])
    for h in m.html_all:
        longest = max((len(t) for t in h.titles if t and t != "0"), default=0)
        if longest / len(subject) > ratio:
            return 1
    return 0


@_eval("check_iframe_src")
def check_iframe_src(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(any(h.iframe_src for h in m.html_all))


_rx_cache: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    rx = _rx_cache.get(pattern)
    if rx is None:
        rx = _rx_cache[pattern] = re.compile(pattern, re.ASCII)
    return rx


# -- MIMEEval -------------------------------------------------------------------------------------
@_eval("check_msg_parse_flags")
def check_msg_parse_flags(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    """MIMEEval: a flag SpamAssassin's message parser set (parseflags.py)."""
    flags = m.cache.get("parse_flags")
    if flags is None:
        flags = m.cache["parse_flags"] = parse_flags(m.full)
    return int(str(args[0]) in flags)


@_eval("check_for_mime")
def check_for_mime(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(m.mime.get(str(args[0]), 0) > 0)


@_eval("check_for_mime_html")
def check_for_mime_html(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(m.mime.get("mime_body_html_count", 0) > 0)


@_eval("check_for_mime_html_only")
def check_for_mime_html_only(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(m.mime.get("mime_body_html_count", 0) > 0 and m.mime.get("mime_body_text_count", 0) == 0)


@_eval("check_mime_multipart_ratio")
def check_mime_multipart_ratio(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # MIMEEval: in multipart/alternative, bytes of the last text part / bytes of the last HTML part
    ratio = m.mime.get("mime_multipart_ratio", 1.0)
    return int(_f(args[0]) <= ratio < _f(args[1]))


@_eval("check_ma_non_text")
def check_ma_non_text(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # MIMEEval: a multipart/alternative with a leaf that is neither text nor RTF
    return int(m.mime.get("ma_non_text", 0) > 0)


@_eval("check_base64_length")
def check_base64_length(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # MIMEEval: the longest line (newline included) of base64 parts, application/ics aside
    n = m.mime.get("base64_length", 0)
    if len(args) > 1 and n > _f(args[1]):
        return 0
    return int(n >= _f(args[0]))


@_eval("check_for_matching_env_and_hdr_from")
def check_for_matching_env_and_hdr_from(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HeaderEval: "two blank headers match" (no envelope sender and no From address: 1)
    return int((m.envelope() or "").lower() == (m.header("From:addr") or "").lower())


_AT_DOMAIN = re.compile(r"@([^@]*)\Z")
_SECOND_LEVEL = re.compile(r"^.+\.([^.]+\.[^.]+)$")


def _second_level(addr: str) -> str:
    m = _AT_DOMAIN.search(addr)
    return _SECOND_LEVEL.sub(r"\1", m.group(1)) if m else ""


_SRS = re.compile(r"SRS\d[=+-]", re.I)
_USER_AT_DOMAIN = re.compile(r"^([^@]+)@(.+)$")


@_eval("check_ratware_envelope_from")
def check_ratware_envelope_from(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HeaderEval: an envelope sender built from the recipient as "domain.user@" (ratware)
    to = m.header("To:addr") or ""
    env = m.header("EnvelopeFrom:addr") or ""
    if not to or not env or _SRS.match(env):
        return 0
    hit = _USER_AT_DOMAIN.match(to)
    if not hit:
        return 0
    user = hit.group(1)
    if (user + "@").lower() not in env.lower():
        return 0  # what the pattern below needs: most messages stop here
    dom = org_domain(hit.group(2).lower())
    if "." not in dom or not is_tld(dom.rsplit(".", 1)[1]):
        return 0
    return int(bool(re.search(rf"(?i)\b{re.escape(dom)}.{re.escape(user)}@", env)))


@_eval("check_equal_from_domains")
def check_equal_from_domains(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HeaderEval: the last two labels of the From and the envelope sender domains differ
    frm = _second_level(m.header("From:addr") or "")
    env = _second_level(m.header("EnvelopeFrom:addr") or "")
    return int(bool(frm and env) and frm.lower() != env.lower())


# -- FreeMail -------------------------------------------------------------------------------------
# FreeMail's default allow list: role and bounce addresses, webmail message ids, forwards.
# FreeMail writes the forwards ".+=.+=.+@"; ``re`` tried every split of the text between its
# three ".+" before it gave up on one without a fitting "@" (a From of 2,000 "=": 6.7 s,
# tests/unit/antispam/test_fuzz_regressions.py). Written here with the leftmost "=" each
# time, which matches exactly where the other does (the "=" chosen first leave the most room
# for the rest), in one pass.
_FREEMAIL_WELCOME = re.compile(r"^(?:abuse|support|sales|info|helpdesk|contact|kontakt|(?:post|host|domain)master"
                               r"|undisclosed.*|request-[a-f0-9]{16}|bounced?-"
                               r"|[a-f0-9]{8}(?:\.[a-f0-9]{8}|-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12})"
                               r"|[^\n][^=\n]*=[^\n][^=\n]*=[^\n]+)@", re.I)
FreemailLists = tuple[frozenset[str], re.Pattern[str] | None]


def freemail_lists(fm: set[str] | frozenset[str]) -> FreemailLists:
    """FreeMail's two lists, made once per rule set (RuleEngine's extras): the plain domains,
    and the entries with wildcards (``?`` one character, ``*`` any characters but a dot:
    ``yahoo.*``, ``hotmail.co*.*``, ``*.att.ne.jp``) as one expression over the address,
    ``@(?:...)$``."""
    wild = sorted(d for d in fm if "*" in d or "?" in d)
    rx = None
    if wild:
        alts = "|".join(re.escape(d).replace(r"\?", ".").replace(r"\*", "[^.]*") for d in wild)
        rx = re.compile(rf"@(?:{alts})$")
    return frozenset(fm).difference(wild), rx


def _is_freemail(addr: str, extra: dict[str, Any]) -> bool:
    """FreeMail's _is_freemail: not a default-allowed address, and the domain listed, or matched
    by a wildcard entry."""
    email = addr.lower().strip("<>")
    if not email or _FREEMAIL_WELCOME.match(email):
        return False
    lists: FreemailLists | None = extra.get("freemail_lists")
    if lists is None:  # (called without an engine's extras)
        lists = freemail_lists(extra.get("freemail_domains") or set())
    plain, wild = lists
    return email.rpartition("@")[2] in plain or (wild is not None and wild.search(email) is not None)


_DOTS = re.compile(r"\.{2,}")


def _all_from_addrs(m: SaMessage) -> list[str]:
    """PerMsgStatus::all_from_addrs: the first Resent-From's address, else those of From,
    Envelope-Sender, Resent-Sender, X-Envelope-From and the envelope sender; lower-cased,
    runs of dots squeezed, without duplicates."""
    resent = m._values(m.raw_headers, "resent-from")  # (get's :addr parses the raw values)
    if resent:
        addrs = [a for _, a in m.addresses(resent[:1]) if "@" in a][:1]
    else:
        addrs = [a for _, a in m.addresses(m._values(m.raw_headers, "from")) if "@" in a]
        for spec in ("Envelope-Sender:addr", "Resent-Sender:addr", "X-Envelope-From:addr", "EnvelopeFrom:addr"):
            a = m.header(spec)
            if a:
                addrs.append(a)
    return list(dict.fromkeys(_DOTS.sub(".", a).lower() for a in addrs if a))


@_eval("check_freemail_from")
def check_freemail_from(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    for addr in _all_from_addrs(m):
        if _is_freemail(addr, extra) and (not args or _arg_regex(str(args[0])).search(addr)):
            return 1
    return 0


@_eval("check_freemail_header")
def check_freemail_header(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # FreeMail reads get("$header:addr") in list context: every address of every such header,
    # parsed from the raw values (a doubled ":addr" is one)
    spec = str(args[0])
    addrs = [a.lower() for a in m._get(spec if spec.endswith(":addr") else spec + ":addr") or ()]
    for a in addrs:
        if _is_freemail(a, extra) and (len(args) < 2 or _arg_regex(str(args[1])).search(a)):
            return 1
    return 0


# FreeMail's defaults: freemail_skip_bulk_envfrom 1, freemail_max_body_emails 5,
# freemail_max_body_freemails 3, freemail_skip_when_over_max 1. FreeMail's last alternative is
# ".+=.+@" (searched: tried at every position, each try at every split); here from each line's
# start with its first "=" after that (a later "=" on the line can only leave less room), linear.
_BULK_ENVFROM = re.compile(r"(?:^(?:post|host|domain)master|^double-bounce|^(?:sentto|owner|return|(?:gr)?bounced?)-.+"
                           r"|-(?:request|bounces?|admin|owner)|\b(?:do[._-t]?)?no[._-t]?repl(?:y|ies)"
                           r"|(?m:^)[^\n][^=\n]*=[^\n]+)@", re.I)
_LOCAL = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
# characters of rendered text searched for addresses (the expressions cost ~0.3 us a character
# where there are '@'s; SpamAssassin's own bound is 50,000 characters a part)
FREEMAIL_BODY_SCAN = 200_000
# FreeMail's email_regex; the last label must be a top-level domain (checked in _email)
_EMAIL_RX = (rf"(?=.{{0,64}}@)(?<!{_LOCAL})({_LOCAL}+(?:\.{_LOCAL}+)*@"
             r"(?:[a-z0-9](?:[a-z0-9-]{0,59}[a-z0-9])?\.){1,4}[a-z0-9-]+)")
_EMAIL = re.compile(_EMAIL_RX, re.I)
_URL_WITH_AT = re.compile(r"<?https?://\S{0,255}(?:@|%40)\S{0,255}", re.I)
_QUOTED_EMAIL = re.compile(r"<?(?<!mailto:)" + _EMAIL_RX +
                           r"(?:>|\s{1,10}(?!(?:fa(?:x|csi)|tel|phone|e?-?mail))[a-z]{2,11}:)", re.I)


def _email(found: str) -> str | None:
    """The address FreeMail's regex takes from a candidate: trailing labels are dropped until
    the last one is a top-level domain (its regex backtracks the same way); None if none is."""
    local, _, dom = found.rpartition("@")
    labels = dom.split(".")
    while len(labels) >= 2:
        if is_tld(labels[-1]):
            return f"{local}@{'.'.join(labels)}".lower()
        labels.pop()
    return None


def _body_freemails(m: SaMessage, extra: dict[str, Any]) -> set[str] | None:
    """FreeMail's _parse_body: the freemail addresses of the body (mailto: links and the rendered
    text, minus addresses inside URLs, in <...> or before "wrote:"-like words); None when the
    body has too many addresses to judge (5 addresses or 3 freemails)."""
    if "freemail_body" in m.cache:
        got: set[str] | None = m.cache["freemail_body"]
        return got
    seen: dict[str, None] = {}
    # (an anchor's mailto: only, as uri_detail_list's type "a": not a form's action, an area's
    # or a frame's)
    mailto = [u for f in m.html_all for u, kind in zip(f.uris, f.uri_kinds, strict=False)
              if kind in ("a", "a_empty") and u[:7].lower() == "mailto:"]
    settings = extra.get("uri_settings")
    if mailto and settings is not None:
        # a link whose URI the text gives too (SpamAssassin's uri_detail_list: types "a" and
        # "parsed") is left to the text, where an address before "Http:" or ">" is dropped
        parsed = set(settings.text_uris([m.body]))
        mailto = [link for link in mailto if link not in parsed]
    for link in mailto:
        hit = _EMAIL.match(link, 7)
        addr = _email(hit.group(1)) if hit else None
        if addr and addr not in seen:
            seen[addr] = None
            if len(seen) >= 20:
                break
    done = False
    budget = FREEMAIL_BODY_SCAN
    for para in m.paragraphs:
        if budget <= 0:
            break
        budget -= len(para)
        if "@" not in para:
            continue
        text = _URL_WITH_AT.sub(" ", para)
        text = _QUOTED_EMAIL.sub(lambda x: " " if _email(x.group(1)) else x.group(0), text)
        for hit in _EMAIL.finditer(text):
            addr = _email(hit.group(1))
            if addr and addr not in seen:
                seen[addr] = None
                if len(seen) >= 40:
                    done = True
                    break
        if done:
            break
    result: set[str] | None = set()
    fm = 0
    for i, addr in enumerate(seen, 1):
        if i == 5:
            result = None
            break
        if _is_freemail(addr, extra):
            fm += 1
            if fm == 3:
                result = None
                break
            result.add(addr)  # type: ignore[union-attr]
    m.cache["freemail_body"] = result
    return result


def _all_addrs(m: SaMessage, name: str) -> list[str]:
    return [a.lower() for _, a in m.addresses(m._values(m.raw_headers, name.lower())) if a]


@_eval("check_freemail_replyto")
def check_freemail_replyto(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # FreeMail: 'replyto': From and Reply-To are different freemails, or a freemail Reply-To
    # differs from a freemail of the body; 'reply': the same with From when there is no Reply-To
    what = str(args[0]) if args else "replyto"
    env = m.header("EnvelopeFrom")
    if env and _BULK_ENVFROM.search(env):
        return 0  # mailing-list-like senders: mostly false positives
    frm = _all_addrs(m, "From")
    rt = _all_addrs(m, "Reply-To")
    from_fm = any(_is_freemail(a, extra) for a in frm)
    rt_fm = any(_is_freemail(a, extra) for a in rt)
    if from_fm and rt_fm and not any(a in rt for a in frm):
        return 1
    if what == "replyto" and not rt_fm:
        return 0
    if what == "reply" and ((rt and not rt_fm) or not from_fm):
        return 0
    body = _body_freemails(m, extra)
    if not body:
        return 0
    reply = rt if what == "replyto" or rt_fm else frm
    return int(any(b != r for b in body for r in reply))


# -- "Faraway" charsets: a charset outside the ``ok_locales`` setting, whose default (``all``,
# Debian's 10_default_prefs.cf) allows every charset; we do not read ok_locales, so these are
# faithfully false (MIMEEval, BodyEval, HeaderEval, HTMLEval all return 0 for "all").
for _name in ("check_for_faraway_charset", "check_for_faraway_charset_in_headers", "html_charset_faraway"):
    EVALS[_name] = lambda m, a, e: 0


# -- WLBLEval: no SpamAssassin welcome/block list entries are configured (our lists layer does
# that), so these are faithfully false.
for _name in ("check_from_in_welcomelist", "check_from_in_whitelist", "check_from_in_blocklist",
              "check_from_in_blacklist", "check_to_in_welcomelist", "check_to_in_whitelist",
              "check_to_in_blocklist", "check_to_in_blacklist", "check_forged_in_welcomelist",
              "check_forged_in_whitelist", "check_from_in_default_welcomelist",
              "check_from_in_default_whitelist", "check_forged_in_default_welcomelist",
              "check_forged_in_default_whitelist", "check_to_in_more_spam", "check_to_in_all_spam",
              "check_uri_host_in_welcomelist", "check_uri_host_in_whitelist",
              "check_uri_host_in_blocklist", "check_uri_host_in_blacklist", "check_from_in_list",
              "check_to_in_list"):
    EVALS[_name] = lambda m, a, e: 0


# -- HeaderEval: headers and the Received trail ---------------------------------------------------
def _get(m: SaMessage, name: str) -> str:
    """SpamAssassin's ``$pms->get(name)`` in scalar context: every value of the header with its
    newline, joined; '' when absent."""
    return "".join(v + "\n" for v in m._values(m.headers, name.lower()))


def _has(m: SaMessage, name: str) -> bool:
    return bool(m._values(m.headers, name.lower()))


_IP_ANY = re.compile(IP, re.ASCII)


@_eval("check_for_missing_to_header")
def check_for_missing_to_header(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HeaderEval: neither To nor Apparently-To (an empty To still counts as present)
    return int(not _has(m, "To") and not _has(m, "Apparently-To"))


@_eval("check_for_to_in_subject")
def check_for_to_in_subject(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HeaderEval: the recipient's address ('address') or its local part ('user') in the Subject
    full_to = m.header("To:addr") or ""
    if not full_to:
        return 0
    subject = _get(m, "Subject")
    test = str(args[0]) if args else ""
    user = full_to.split("@", 1)[0]
    # every form below contains the address (or its local part): without it, no pattern to build
    if (full_to if test == "address" else user).casefold() not in subject.casefold():
        return 0
    if test == "address":
        return int(re.search(rf"\b{re.escape(full_to)}\b", subject, re.I) is not None)
    if test == "user":
        to = re.escape(user)
        return int(re.match(rf"(?:(?:re|fw):\s*(?:\w+\s+)?{to}$|(?-i:{to})\s*[,:;!?-](?:$|\s)|{to}$"
                            rf"|,\s*{to}[,:;!?-]$)", subject, re.I) is not None)
    return 0


def gated_through_received_hdr_remover(m: SaMessage) -> bool:
    """HeaderEval: mail whose Received trail a list manager (ezmlm, MSN groups) removed, or
    that has none at all: the Received-based checks cannot judge it."""
    txt = _get(m, "Mailing-List")
    if (re.search(r"^contact \S+@\S+; run by ezmlm$", txt, re.M)
            and re.search(r"^mailing list \S+@\S+", _get(m, "Delivered-To"), re.M)
            and re.search(r"qmail \d+ invoked (?:from network|by .{3,20})\); \d+ ... \d+", _get(m, "Received"))):
        return True
    if not _has(m, "Received"):
        return True
    return re.search(r"from groups\.msn\.com \(\S+\.msn\.com ", _get(m, "Received")) is not None


@_eval("gated_through_received_hdr_remover")
def _gated(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(gated_through_received_hdr_remover(m))


@_eval("check_ratware_name_id")
def check_ratware_name_id(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HeaderEval: Message-Id "<28 capitals.X>" with From '"Name" <X>'
    mm = re.search(r"<[A-Z]{28}\.([^>]+?)>", m.header("MESSAGEID") or "")
    if mm is None:
        return 0
    return int(re.search(rf"\"[^\"]+\"\s*<{re.escape(mm.group(1))}>", _get(m, "From")) is not None)


@_eval("check_for_fake_aol_relay_in_rcvd")
def check_for_fake_aol_relay_in_rcvd(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HeaderEval: an AOL relay name ("rly-xx01.") not written the way AOL's relays write it
    rcvd = " ".join(_get(m, "Received").split())
    if not re.search(r" rly-[a-z][a-z]\d\d\.", rcvd, re.I):
        return 0
    if re.search(r"/AOL-\d+\.\d+\.\d+\)", rcvd) or re.search(r"ESMTP id (?:RELAY|MAILRELAY|MAILIN)", rcvd):
        return 0
    return 1


def _msn_groups(m: SaMessage) -> bool:
    mm = re.search(r"<(\S+)@groups\.msn\.com>", _get(m, "To"), re.I)
    if mm is None:
        return False
    listname = mm.group(1)
    ms = re.search(r"from mail pickup service by ((?:p\d\d\.)groups\.msn\.com)\b", _get(m, "Received"))
    if ms is None:
        return False
    msgid = _get(m, "Message-Id")
    # the server and list names are used as patterns, as in HeaderEval
    try:
        if listname == "notifications":
            return re.match(rf"<\S+@{ms.group(1)}>", msgid) is not None
        return (re.match(rf"<{listname}-\S+@groups\.msn\.com>", msgid) is not None
                and re.search(rf"{listname}-bounce@groups\.msn\.com", m.header("EnvelopeFrom:addr") or "") is not None)
    except re.error:
        return False


def _hotmail_forgery(m: SaMessage) -> tuple[int, int]:
    """HeaderEval's (hotmail address with forged hotmail Received, hotmail address without a
    hotmail Received)."""
    if "hotmail" in m.cache:
        cached: tuple[int, int] = m.cache["hotmail"]
        return cached
    m.cache["hotmail"] = result = _hotmail_forgery_uncached(m)
    return result


def _hotmail_forgery_uncached(m: SaMessage) -> tuple[int, int]:
    rcvd = " ".join(_get(m, "Received").split())
    if "hotmail.com" not in rcvd and "hotmail.com" not in (m.header("From:addr") or "").lower():
        return 0, 0  # (the two hits below need one or the other; every other way gives 0, 0)
    if "from mail pickup service by hotmail.com with Microsoft SMTPSVC;" in rcvd or _msn_groups(m):
        return 0, 0
    ip = _has(m, "X-Originating-Ip") and _IP_ANY.search(_get(m, "X-Originating-Ip")) is not None
    orig = _has(m, "X-OriginatorOrg") and re.search(r"hotmail\.com|msonline-outlook", _get(m, "X-OriginatorOrg")) is not None
    if gated_through_received_hdr_remover(m):
        return 0, 0
    genuine = (
        (ip and re.search(r"from (?:\S*\.)?hotmail.com \(\S+\.hotmail(?:\.msn)?\.com[ )]", rcvd))
        or (orig and re.search(r"from \S*\.outbound\.protection\.outlook\.com \(\S+\.outbound\.protection\.outlook\.com[ )]",
                               rcvd))
        or (orig and re.search(rf"from \S*\.(?:eur|nam)prd\d+\.prod\.outlook\.com \({IP}\)", rcvd))
        or (ip and re.search(rf"from \S*\.hotmail.com \(\[{IP}\][ ):]", rcvd))
        or (ip and re.search(r"from \S+ by \S+\.hotmail(?:\.msn)?\.com with HTTP;", rcvd))
        or (ip and re.search(r"from \[66\.218.\S+\] by \S+\.yahoo\.com", rcvd)))
    if genuine:
        return 0, 0
    if re.search(r"(?:from |HELO |helo=)\S*hotmail\.com\b", rcvd):
        return 1, 0
    if not re.search(r"\bhotmail\.com$", m.header("From:addr") or "", re.I):
        return 0, 0
    return 0, 1


@_eval("check_for_forged_hotmail_received_headers")
def check_for_forged_hotmail_received_headers(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return _hotmail_forgery(m)[0]


@_eval("check_for_no_hotmail_received_headers")
def check_for_no_hotmail_received_headers(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return _hotmail_forgery(m)[1]


@_eval("check_for_forged_eudoramail_received_headers")
def check_for_forged_eudoramail_received_headers(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    if not re.search(r"\beudoramail\.com$", m.header("From:addr") or "", re.I):
        return 0
    rcvd = " ".join(_get(m, "Received").split())
    ip = _has(m, "X-Sender-Ip") and _IP_ANY.search(_get(m, "X-Sender-Ip")) is not None
    if gated_through_received_hdr_remover(m):
        return 0
    return int(not (ip and re.search(r"by \S*whowhere.com;", rcvd)))


@_eval("check_for_forged_yahoo_received_headers")
def check_for_forged_yahoo_received_headers(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    frm = m.header("From:addr") or ""
    if not re.search(r"\byahoo\.com$", frm, re.I):
        return 0
    rcvd = _get(m, "Received")
    if _get(m, "Resent-From") and _get(m, "Resent-To"):
        rcvd = _get(m, "X-Received") or rcvd
    rcvd = " ".join(rcvd.split())
    if gated_through_received_hdr_remover(m):
        return 0
    p = m.relays()
    if (re.search(r" rdns=\S+\.yahoo\.com ", p.pseudo_header("trusted"))
            or re.match(r"[^\]]+ rdns=\S+\.yahoo\.com ", p.pseudo_header("untrusted"))):
        return 0
    if (re.search(r"by web\S+\.mail\S*\.yahoo\.com via HTTP", rcvd)
            or re.search(r"by sonic\S+\.consmr\.mail\S*\.yahoo\.com with HTTP", rcvd)
            or re.search(r"by smtp\S+\.yahoo\.com with SMTP", rcvd)
            or re.search(rf"from \[{IP}\] by \S+\.(?:groups|scd|dcn)\.yahoo\.com with NNFMP", rcvd)):
        return 0
    if re.search(r"\bmailer\d+\.bulk\.scd\.yahoo\.com\b", rcvd) and re.search(r"@reply\.yahoo\.com$", frm, re.I):
        return 0
    if re.search(r"by \w+\.\w+\.yahoo\.com \(\d+\.\d+\.\d+/\d+\.\d+\.\d+\)(?: with ESMTP)? id \w+", rcvd):
        return 0
    return 1


@_eval("check_for_forged_juno_received_headers")
def check_for_forged_juno_received_headers(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    if not re.search(r"\bjuno\.com$", m.header("From:addr") or "", re.I):
        return 0
    if gated_through_received_hdr_remover(m):
        return 0
    xorig, xmailer, rcvd = _get(m, "X-Originating-IP"), _get(m, "X-Mailer"), _get(m, "Received")
    if xorig:
        if (not re.search(rf"from.*\b(?:juno|untd)\.com.*[\[(]{IP}[\])].*by", rcvd)
                and not re.search(r" cookie\.(?:juno|untd)\.com ", rcvd)):
            return 1
        return int("Juno " not in xmailer)
    if re.search(rf"from.*\bmail\.com.*\[{IP}\].*by", rcvd):
        if not re.search(r"\bmail\.com", xmailer):
            return 1
    elif re.search(rf"from (webmail\S+\.untd\.com) \(\1 \[{IP}\]\) by", rcvd):
        if not re.match(r"Webmail Version \d", xmailer):
            return 1
    else:
        return 1
    return int(_IP_ANY.search(xorig) is None)


@_eval("check_for_forged_gmail_received_headers")
def check_for_forged_gmail_received_headers(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    if not re.search(r"\bgmail\.com$", m.header("From:addr") or "", re.I):
        return 0
    xreceived, received = _get(m, "X-Received"), _get(m, "Received")
    if (re.search(r"by 10\.\S+ with SMTP id \S+", xreceived) or re.search(r"by 2002:a\d\d:\w+:\S+ with SMTP id \S+", xreceived)
            or re.search(r"by smtp\.googlemail\.com with ESMTPSA id \S+", received)):
        return 0
    # Google's X-Gm-Message-State and X-Google-Smtp-Source are at least 60 characters long
    return int(not (len(_get(m, "X-Gm-Message-State")) >= 60 and len(_get(m, "X-Google-Smtp-Source")) >= 60))


# -- HeaderEval: recipients -------------------------------------------------------------------------
TOCC_SORTED_COUNT = 7
TOCC_SIMILAR_COUNT = 5
TOCC_SIMILAR_LENGTH = 2


def _equal_pairs(values: list[str]) -> int:
    """How many pairs of the values are equal."""
    return sum(k * (k - 1) // 2 for k in Counter(values).values())


def _recipients(m: SaMessage) -> tuple[bool, float]:
    """HeaderEval::_check_recipients: (sorted, similarity) of the To/Cc (else Bcc) addresses."""
    cached: tuple[bool, float] | None = m.cache.get("recipients")
    if cached is not None:
        return cached
    inputs: list[str] = []
    for names in (("to", "cc"), ("bcc",)):
        for name in names:
            inputs += [a for _, a in m.addresses(m._values(m.raw_headers, name)) if a]
        if len(inputs) >= TOCC_SIMILAR_COUNT:
            break
    address: list[str] = []
    previous = ""
    for current in inputs:  # duplicates dropped only when next to each other
        if current.lower() != previous.lower():
            address.append(current)
            previous = current
        if len(address) == 256:
            break
    is_sorted = len(address) >= TOCC_SORTED_COUNT and address == sorted(address)
    similar = 0.0
    if len(address) >= TOCC_SIMILAR_COUNT:
        user = [a[:TOCC_SIMILAR_LENGTH] for a in address]
        # as in Perl, an address without "@" shifts the host lists (missing entries read as '')
        fqhn = [a.split("@", 1)[1] for a in address if "@" in a]
        fqhn += [""] * (len(address) - len(fqhn))
        host = [h[:TOCC_SIMILAR_LENGTH] for h in fqhn]
        # SpamAssassin counts, over every pair, equal user parts and equal host prefixes of
        # different hosts; counted here by groups instead of pair by pair (256 addresses are
        # 32,640 pairs): a host equal in full is equal in prefix, so the second count is the
        # pairs of equal prefixes less the pairs of equal hosts
        n = len(address)
        similar = (_equal_pairs(user) + _equal_pairs(host) - _equal_pairs(fqhn)) / (n * (n - 1) // 2)
    m.cache["recipients"] = result = (is_sorted, similar)
    return result


@_eval("sorted_recipients")
def sorted_recipients(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(_recipients(m)[0])


@_eval("similar_recipients")
def similar_recipients(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    sim = _recipients(m)[1]
    lo, hi = str(args[0]), str(args[1])
    return int((lo == "undef" or sim >= float(lo)) and (hi == "undef" or sim < float(hi)))


# -- HeaderEval: Outlook Express Message-Id ---------------------------------------------------------
_TZ = {"UT": "+0000", "UTC": "+0000", "NDT": "-0230", "AST": "-0400", "ADT": "-0300", "NST": "-0330",
       "EST": "-0500", "EDT": "-0400", "CST": "-0600", "CDT": "-0500", "MST": "-0700", "MDT": "-0600",
       "PST": "-0800", "PDT": "-0700", "HST": "-1000", "AKST": "-0900", "AKDT": "-0800", "HADT": "-0900",
       "HAST": "-1000", "GMT": "+0000", "BST": "+0100", "IST": "+0100", "WET": "+0000", "WEST": "+0100",
       "CET": "+0100", "CEST": "+0200", "EET": "+0200", "EEST": "+0300", "MSK": "+0300", "MSD": "+0400",
       "MET": "+0100", "MEZ": "+0100", "MEST": "+0200", "MESZ": "+0200", "BRST": "-0200", "BRT": "-0300",
       "AEST": "+1000", "AEDT": "+1100", "ACST": "+0930", "ACDT": "+1030", "AWST": "+0800", "NZST": "+1200",
       "NZDT": "+1300", "JST": "+0900", "KST": "+0900", "HKT": "+0800", "SGT": "+0800", "PHT": "+0800",
       "IDT": "+0300"}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MON = "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DATE_FORMS = (re.compile(rf" (\d+) {_MON} (\d{{4}}) ", re.I | re.ASCII),
               re.compile(rf" {_MON} +(\d+) \d+:\d+:\d+ (\d{{4}}) ", re.I | re.ASCII),
               re.compile(rf" (\d+) {_MON} (\d{{2,3}}) ", re.I | re.ASCII))


_COMMA_SPACES = re.compile(r", *")
_SPACE_RUN = re.compile(r"\s+", re.ASCII)
_CLOCK = re.compile(r" (\d?\d):(\d\d)(:(\d\d))? ", re.ASCII)
_NUMERIC_ZONE = re.compile(r" ([-+]\d{4}) ", re.ASCII)
_NAMED_ZONE = re.compile(r"\b([A-Z]{2,4}(?:-DST)?)\b", re.ASCII)
_MONTH_NUMBER = {m: i for i, m in enumerate(_MONTHS, 1)}
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()


def parse_rfc822_date(date: str) -> int | None:
    """Mail::SpamAssassin::Util::parse_rfc822_date: seconds since the epoch of the first date
    found in the text, lenient as SpamAssassin is (clamped fields, years 1970-2037, unknown
    zones as -0000); None when there is no day, month and year."""
    s = _SPACE_RUN.sub(" ", _COMMA_SPACES.sub(" ", f" {date} "))
    for i, rx in enumerate(_DATE_FORMS):
        m = rx.search(s)
        if m:
            s = s[:m.start()] + " " + s[m.end():]
            if i == 1:
                mon, dd, year = m.group(1), m.group(2), m.group(3)
            else:
                dd, mon, year = m.group(1), m.group(2), m.group(3)
            break
    else:
        return None
    yyyy = int(year)
    if len(year) == 2 and yyyy < 50:
        yyyy += 2000
    elif len(year) != 4:
        yyyy += 1900
    hh = mm = ss = 0
    m = _CLOCK.search(s)
    if m:
        s = s[:m.start()] + " " + s[m.end():]
        hh, mm, ss = int(m.group(1)), int(m.group(2)), int(m.group(4) or 0)
    tzoff = ""
    m = _NUMERIC_ZONE.search(s)
    if m:
        tzoff = m.group(1)
    else:
        m = _NAMED_ZONE.search(s)
        if m and m.group(1) in _TZ:
            tzoff = _TZ[m.group(1)]
    tzoff = tzoff or "-0000"
    mon_n = _MONTH_NUMBER[mon.lower()]
    day = int(dd)
    ss, mm, hh = min(ss, 59), min(mm, 59), min(hh, 23)
    max_dd = 30 if mon_n in (4, 6, 9, 11) else (calendar.monthrange(yyyy, 2)[1] if mon_n == 2 else 31)
    if day > max_dd:
        day, mon_n = 1, mon_n + 1
        if mon_n > 12:
            mon_n, yyyy = 1, yyyy + 1
    yyyy = min(max(yyyy, 1970), 2037)
    if day < 1:
        return None  # Time::Local refuses day 0
    # calendar.timegm's arithmetic without its call (a clamped year's 29 February is 1 March, as there)
    t = ((date_cls(yyyy, mon_n, 1).toordinal() - _EPOCH_ORDINAL + day - 1) * 24 + hh) * 3600 + mm * 60 + ss
    off = ((int(tzoff[1:3]) * 60) + int(tzoff[3:5])) * 60
    if tzoff[0] == "-":
        return t + off
    return 0 if t < off else t - off


@_eval("check_outlook_message_id")
def check_outlook_message_id(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HeaderEval: an Outlook Express Message-Id encodes its sending time; compare it with the
    # Date header, then with the Received headers' first date
    ids = "".join(_get(m, h) for h in ("X-Message-Id", "Resent-Message-Id", "X-Original-Message-ID", "Message-Id"))
    mm = re.match(r"<[0-9a-f]{4}([0-9a-f]{8})\$[0-9a-f]{8}\$[0-9a-f]{8}@", ids)
    if mm is None:
        return 0
    token = int(mm.group(1), 16)
    x, y, fudge = 0.0023283064365387, 27111902.8329849, 250
    for text in (_get(m, "Date"), _get(m, "Received")):
        expected = int((parse_rfc822_date(text) or 0) * x + y)
        if abs(token - expected) < fudge:
            return 0
    return 1


# -- RelayEval: the trust path (relays.py) ---------------------------------------------------------
# Debian's rules for these sit in "ifplugin Mail::SpamAssassin::Plugin::RelayEval" blocks, which
# run only once sarules counts that plugin as loaded.
_IPV4_EXACT = re.compile(r"(?:(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.){3}(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\Z", re.ASCII)
_NUMERIC_HELO = re.compile(r"\bhelo=((?:(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d)\.){3}(?:1\d\d|2[0-4]\d|25[0-5]|[1-9]\d|\d))"
                           r"\b(?=[\x00-\x20,;\[()<>]|\Z)", re.I | re.ASCII)
# RelayEval's /^\w+(?:[\w.-]+\.)+\w+$/, written without nested quantifiers (the same strings:
# a word character, at least one more of [\w.-], a dot, word characters to the end)
_HOST_LIKE = re.compile(r"\w[\w.-]+\.\w+\Z", re.ASCII)


@_eval("check_all_trusted")
def check_all_trusted(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    p = m.relays()
    return int(bool(p.trusted) and not p.untrusted and not p.unparseable)


@_eval("check_no_relays")
def check_no_relays(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    p = m.relays()
    return int(not p.trusted and not p.untrusted and not p.unparseable)


@_eval("check_relays_unparseable")
def check_relays_unparseable(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(m.relays().unparseable > 0)


@_eval("check_for_numeric_helo")
def check_for_numeric_helo(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # a public IPv4 address as HELO in an untrusted relay (the first such HELO decides)
    mm = _NUMERIC_HELO.search(m.relays().pseudo_header("untrusted"))
    return int(mm is not None and not is_private_ip(mm.group(1)))


@_eval("helo_ip_mismatch")
def helo_ip_mismatch(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # an untrusted relay that said HELO with a public IPv4 address outside its own /24
    for r in m.relays().untrusted:
        if not _IPV4_EXACT.match(r.helo) or is_private_ip(r.helo):
            continue
        if (_IPV4_EXACT.match(r.ip) and not is_private_ip(r.ip) and r.helo != r.ip
                and not r.ip.startswith(r.helo.rsplit(".", 1)[0] + ".")):
            return 1
    return 0


_DOTCOM_HELO = re.compile(r"(?:\.|^)(lycos\.com|lycos\.co\.uk|hotmail\.com|localhost\.com|excite\.com|caramail\.com"
                          r"|cs\.com|aol\.com|msn\.com|yahoo\.com|drizzle\.com)$", re.I)


@_eval("check_for_no_rdns_dotcom_helo")
def check_for_no_rdns_dotcom_helo(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # a big provider's name as HELO from a host without rDNS; as in RelayEval, the last
    # public untrusted relay decides (the flag is reset for each one)
    found = 0
    for r in m.relays().untrusted:
        if r.ip_private:
            continue
        found = int(bool(_DOTCOM_HELO.search(r.helo)) and r.no_reverse_dns)
    return found


def hostname_to_domain(hostname: str) -> str:
    """RelayEval's rough domain of a host name: the last two labels (three when the last one is
    a two-letter code other than ie, fr, de); IP addresses as they are."""
    if not re.search(r"[a-zA-Z]", hostname):
        return hostname
    parts = hostname.split(".")
    while parts and parts[-1] == "":  # Perl's split drops trailing empty fields
        parts.pop()
    if len(parts) > 1 and re.search(r"(?:\S{3,}|ie|fr|de)", parts[-1]):
        return ".".join(parts[-2:])
    if len(parts) > 2:
        return ".".join(parts[-3:])
    return hostname


@_eval("check_for_forged_received_trail")
def check_for_forged_received_trail(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # more than one untrusted relay whose "by" domain is not the rDNS domain of the relay
    # above it (the hand-over does not line up)
    relays = m.relays().untrusted
    by = [hostname_to_domain(r.by.lower()) for r in relays]
    frm: list[str | None] = [hostname_to_domain(r.rdns.lower()) for r in relays]
    mismatch = 0
    for i, r in enumerate(relays):
        if not _HOST_LIKE.match(by[i]):
            continue
        if frm[i] is not None and re.match(r"localhost(?:\.localdomain)?\Z", frm[i] or "") and r.ip == "127.0.0.1":
            frm[i] = None
        prev = frm[i - 1] if i > 0 else None
        if (prev is not None and _HOST_LIKE.match(prev) and by[i] != prev
                and not (by[i] == "msn.com" and prev == "hotmail.com")):
            mismatch += 1
    return int(mismatch > 1)


# -- the DKIM plugin's one rule that is no network test ------------------------------------------
@_eval("check_dkim_dependable")
def check_dkim_dependable(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    """``__DKIM_DEPENDABLE``: the signatures were checked and a failure among them is not the
    caller's doing (SpamAssassin: not when the message it was given was cut short; the milter
    verifies the whole message). The dkim layer checks them: the rules layer passes
    ``dkim_checked`` when it ran; where it did not, 0, as SpamAssassin without DNS reads it."""
    return int(bool(extra.get("dkim_checked")))


# WLBLEval's functions live in their own module, and the DKIM and SPF plugins' welcome-lists in
# theirs; importing them registers them
from gateway_milter.antispam import authlists, imageinfo, wlbleval  # noqa: E402,F401

# network tests (tflags net) that run all the same: their eval functions read what the dkim and
# spf layers found (the rules layer passes it), no lookup of their own
LAYER_ANSWERED: frozenset[str] = authlists.EVALS

# evals that read the rule's own kind (body or rawbody text), passed before their arguments
WANTS_RULE_KIND = frozenset({"image_to_text_ratio"})
