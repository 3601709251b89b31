"""The SpamAssassin eval functions we implement, following the Perl plugins' definitions
(Mail::SpamAssassin::Plugin::{HeaderEval,BodyEval,HTMLEval,FreeMail,Bayes,WLBLEval}).

An eval rule whose function is not here is listed by ``rules check`` as unsupported and never
runs. Each function takes the message view, the rule's arguments and the engine's extras and
returns a hit count (0 = no hit).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from email.utils import getaddresses, parsedate_tz, mktime_tz
from typing import Any

from gateway_milter.antispam.saview import SaMessage

EvalFn = Callable[[SaMessage, tuple[Any, ...], dict[str, Any]], int]
EVALS: dict[str, EvalFn] = {}


def _eval(name: str) -> Callable[[EvalFn], EvalFn]:
    def deco(fn: EvalFn) -> EvalFn:
        EVALS[name] = fn
        return fn
    return deco


# Arguments we implement for the evals that take a test name; other tests are unsupported
# (listed by ``rules check``) rather than silently false.
SUPPORTED_TESTS: dict[str, set[str]] = {
    "html_range": {"length", "bad_tag_ratio"},
    "html_eval": {"length"},
    "html_test": {"html", "embeds"},
    "html_text_match": {"comment", "title"},
    "check_for_mime": {"mime_qp_count", "mime_base64_count", "mime_base64_encoded_text", "mime_qp_long_line",
                       "mime_attachment"},
    "check_freemail_replyto": {"replyto"},
}


def unsupported_reason(fn: str, kind: str, args: tuple[Any, ...] = ()) -> str | None:
    if fn not in EVALS:
        return f"eval function {fn}() is not implemented"
    tests = SUPPORTED_TESTS.get(fn)
    if tests is not None and (not args or str(args[0]) not in tests):
        return f"eval {fn}({args[0] if args else ''!r}) is not implemented"
    return None


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
    # BodyEval: the length of the rendered body without the subject line
    return int(m.text_len < _f(args[0]))


_NOT_LETTER = bytes(c for c in range(256) if not (65 <= c <= 90 or 97 <= c <= 122))
_NOT_UPPER = bytes(c for c in range(256) if not 65 <= c <= 90)


@_eval("check_for_uppercase")
def check_for_uppercase(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HeaderEval: percentage of upper-case letters among letters of the body (>= 200 letters)
    counts = m.cache.get("uppercase")
    if counts is None:
        # ASCII letters only: encoding to ASCII drops the rest, translate() counts in C
        raw = "\n".join(m.paragraphs[1:] if m.subject else m.paragraphs).encode("ascii", "ignore")
        counts = m.cache["uppercase"] = (len(raw.translate(None, _NOT_LETTER)), len(raw.translate(None, _NOT_UPPER)))
    letters, upper = counts
    if letters < 200:
        return 0
    pct = upper * 100.0 / letters
    return int(_f(args[0]) < pct <= _f(args[1]))


# -- HeaderEval -----------------------------------------------------------------------------------
@_eval("subject_is_all_caps")
def subject_is_all_caps(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    s = re.sub(r"^(?:(?:Re|Fwd|Fw|Aw|Antwort|Sv):\s*)+", "", m.subject, flags=re.I)
    if len(s) < 10 or not re.search(r"[A-Za-z]", s) or " " not in s.strip():
        return 0
    return int(s == s.upper())


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
    # HeaderEval: Date: minus the time in the newest Received header, in hours
    if "date_shift" not in m.cache:  # a dozen rules ask, with different ranges
        m.cache["date_shift"] = _date_shift(m)
    diff: float | None = m.cache["date_shift"]
    if diff is None:
        return 0
    lo = _f(args[0], -math.inf)
    hi = _f(args[1], math.inf)
    return int(lo <= diff < hi)


def _date_shift(m: SaMessage) -> float | None:
    date = m.header("Date")
    # the newest Received header written by a real MTA: fetchmail and local re-delivery lines
    # are skipped as in HeaderEval::_get_received_header_times
    recvd = [v for n, v in m.raw_headers if n.lower() == "received"
             and "fetchmail" not in v and not re.match(r"\s*from localhost\b", v)]
    if not date or not recvd:
        return None
    d = parsedate_tz(date)
    r = parsedate_tz(recvd[0].rsplit(";", 1)[-1].strip())
    if not d or not r:
        return None
    try:
        return (mktime_tz(d) - mktime_tz(r)) / 3600.0
    except (OverflowError, ValueError):
        return None


_TEMPLATE_OK = re.compile(r"^(?:X-VMS-To|X-UIDL|X-Face|To|Cc|From|Subject|References|In-Reply-To|"
                          r"(?:X-|Resent-|X-Original-)?Message-Id):", re.I)


@_eval("check_unresolved_template")
def check_unresolved_template(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    all_ = m.header("ALL:raw") or ""
    for line in all_.splitlines():
        if re.search(r"%[A-Z][A-Z_-]", line) and not _TEMPLATE_OK.match(line):
            return 1
    return 0


# -- HTMLEval -------------------------------------------------------------------------------------
@_eval("html_tag_exists")
def html_tag_exists(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(m.has_html and m.html.tags.get(str(args[0]).lower(), 0) > 0)


@_eval("html_image_only")
def html_image_only(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # HTMLEval: an HTML message with images whose rendered text length is in [min, max)
    if not m.has_html or m.html.images == 0:
        return 0
    n = len(m.html.text.strip())
    return int(_f(args[0]) < n <= _f(args[1]))


@_eval("html_range")
def html_range(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    if not m.has_html:
        return 0
    test = str(args[0])
    if test == "length":
        value = float(m.html.length)
    elif test == "bad_tag_ratio":
        value = m.html.bad_tags / m.html.elements if m.html.elements else 0.0
    else:
        return 0
    return int(_f(args[1]) < value <= _f(args[2], math.inf))


@_eval("html_eval")
def html_eval(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    if not m.has_html or str(args[0]) != "length":
        return 0
    mm = re.match(r"^\s*(<|<=|>|>=|==)\s*(\d+)\s*$", str(args[1]))
    if not mm:
        return 0
    v, n = m.html.length, int(mm.group(2))
    return int({"<": v < n, "<=": v <= n, ">": v > n, ">=": v >= n, "==": v == n}[mm.group(1)])


@_eval("html_test")
def html_test(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    if not m.has_html:
        return 0
    test = str(args[0])
    if test == "html":
        return int(m.html.elements > 0)
    if test == "embeds":
        return int(bool(m.html.tags.get("embed") or m.html.tags.get("object")))
    return 0


@_eval("html_text_match")
def html_text_match(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    if not m.has_html or len(args) < 2:
        return 0
    texts = m.html.comments if str(args[0]) == "comment" else [m.html.title]
    rx = _compiled(str(args[1]))
    return int(any(rx.search(t) for t in texts))


_rx_cache: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    rx = _rx_cache.get(pattern)
    if rx is None:
        rx = _rx_cache[pattern] = re.compile(pattern, re.ASCII)
    return rx


# -- MIMEEval -------------------------------------------------------------------------------------
@_eval("check_for_mime")
def check_for_mime(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(m.mime.get(str(args[0]), 0) > 0)


@_eval("check_for_mime_html")
def check_for_mime_html(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(m.mime.get("mime_body_html_count", 0) > 0)


@_eval("check_for_mime_html_only")
def check_for_mime_html_only(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return int(m.mime.get("mime_body_html_count", 0) > 0 and m.mime.get("mime_body_text_count", 0) == 0)


@_eval("check_for_matching_env_and_hdr_from")
def check_for_matching_env_and_hdr_from(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    env = (m.envelope_from or "").lower()
    return int(bool(env) and env == (m.header("From:addr") or "").lower())


# -- FreeMail -------------------------------------------------------------------------------------
def _is_freemail(addr: str, extra: dict[str, Any]) -> bool:
    dom = addr.rpartition("@")[2].lower().strip(">")
    fm: set[str] = extra.get("freemail_domains") or set()
    if dom in fm:
        return True
    parts = dom.split(".")
    return any("*." + ".".join(parts[i:]) in fm for i in range(1, len(parts)))


@_eval("check_freemail_from")
def check_freemail_from(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    addr = m.header("From:addr") or ""
    if not addr or not _is_freemail(addr, extra):
        return 0
    if args and not re.search(str(args[0]), addr):
        return 0
    return 1


@_eval("check_freemail_header")
def check_freemail_header(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    spec = str(args[0])
    value = m.header(spec) or ""
    addrs = [a for _, a in getaddresses([value])] if "@" in value else []
    for a in addrs:
        if _is_freemail(a, extra) and (len(args) < 2 or re.search(str(args[1]), a)):
            return 1
    return 0


@_eval("check_freemail_replyto")
def check_freemail_replyto(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    # 'replyto': From and Reply-To are both freemail addresses and differ
    frm = (m.header("From:addr") or "").lower()
    rt = (m.header("Reply-To:addr") or "").lower()
    return int(bool(frm and rt) and frm != rt and _is_freemail(frm, extra) and _is_freemail(rt, extra))


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
