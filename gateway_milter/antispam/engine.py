"""The compiled rule engine: runs a :class:`~.sarules.RuleSet` against a :class:`~.saview.SaMessage`.

Compiled once per process and rule set (``engine_for``): each rule becomes a small function
(regular expression, header lookup, eval function, or meta expression compiled to Python).
Per message, the scored rules are computed; sub-rules only when a meta reads them, metas with
short-circuit; a body-like expression runs only if its prefilters (necessary literals, the
characters possible at a match's first positions, a relaxed copy of the rule) leave a chance of
a match (docs/decisions/0041-rule-matching.md). ``run(m, lazy=False)`` is the reference path
that runs every rule's expression, which the tests compare against.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from itertools import compress, islice
from pathlib import Path
from typing import Any

from gateway_milter.antispam import hsmatch, metavm, re2filter, saeval, sauris, wlbleval
from gateway_milter.auth import psl
from gateway_milter.antispam.matcher import (C, FactorIndex, literal_set, parse_tree, position_pattern,
                                             relaxed_pattern, required_factors, required_squeezed_factors,
                                             shared_trees, squeeze)
from gateway_milter.antispam.perlre import PatternError, PerlPattern, octets
from gateway_milter.antispam.possessive import some
from gateway_milter.antispam.sarules import (MetaNode, Rule, RuleBuildError, RuleSet, autolearn_areas, capture_names,
                                              fill_templates, load_rules, rule_files)
from gateway_milter.antispam.saview import MAX_LINE, UNSUPPORTED_HEADERS, SaMessage, body_lines, decode_header_value

log = logging.getLogger("bulwark.rules")

SUPPORTED_MODS = ("", "raw", "addr", "name", "name:raw", "first", "last")


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A scored rule that hit: ``score`` its points per hit, ``count`` its value (the number of
    matches of a rule with tflags multiple, up to maxhits; 1 otherwise) and ``times`` how often
    its score counts: ``count`` for a rule with tflags multiple, as SpamAssassin adds the score
    at each hit (PerMsgStatus::got_hit) and names the rule once per hit; 1 otherwise."""

    name: str
    score: float
    describe: str
    count: int = 1
    times: int = 1


@dataclass(slots=True)
class EngineResult:
    hits: list[RuleHit] = field(default_factory=list)  # scored rules that hit (not __ subrules)
    # every rule's value: a hit count, a meta's value (META_VALUE, which may be a fraction)
    values: dict[str, Any] = field(default_factory=dict)
    score: float = 0.0
    ms: float = 0.0


BODY_KINDS = ("body", "rawbody", "uri", "full")
# Header rules that also go through the Hyperscan pass, by what they search: every header joined,
# the Received headers and the trust path's relay lines, long texts that many rules search
# (RuleEngine.run 5-7.5 % faster than with ALL alone: docs/decisions/0047-hyperscan-first-pass.md)
HS_HEADERS = ("ALL", "ALL:raw", "Received", "X-Spam-Relays-External", "X-Spam-Relays-Untrusted",
              "X-Spam-Relays-Trusted", "X-Spam-Relays-Internal")
# and every other header spec with at least this many plain, not negated rules (Subject,
# X-Mailer, From, From:addr, Message-ID, ... in Debian's set), its absent headers settled from
# the rules' if-unset texts: 221 -> 79 header rule computations a message, the whole content
# path 1-2 % faster (measured, ADR 0047's addendum; on its own, a short header gained nothing)
HS_HEADER_MIN_RULES = 4
# Relative cost of computing one rule, used only to order the operands of ``&&`` and ``||`` in
# metas (cheap first): any order gives the same truth value.
COST_KNOWN = 0.0  # a scored rule: computed for every message anyway
COST_SIMPLE = 1.0  # header, exists, mimeheader, eval
COST_FILTERED = 0.3  # body-like rule with a literal factor: one set lookup, the expression seldom runs
COST_UNFILTERED = 30.0  # body-like rule run over the whole text
POSITIONS = 8  # positions of a match's start described by matcher.position_pattern
P_HIT = 0.1  # assumed chance that a rule (or a count comparison) is true


# what in an expression (as perlre translates it) can match a newline or look past one: white
# space, negated classes and escapes, look-around (a translated $, \z and \Z are look-arounds),
# back-references, a newline escape or a byte range holding it; "." only with /s
_CROSSES_LINES = re.compile(r"\\[sWDnZzvhRXpPNcK]|\\[1-9]|\[\^|\(\?<|\(\?=|\(\?!|\\x0?[aA](?![0-9a-fA-F])"
                            r"|\\x\{0*[aA]\}|\\0?12(?![0-9])")
_BYTE_RANGE = re.compile(r"\\x([0-9a-fA-F]{2})-\\x([0-9a-fA-F]{2})")


def _may_cross_lines(source: str, flags: str) -> bool:
    if "\n" in source or ("s" in flags and "." in source) or _CROSSES_LINES.search(source):
        return True
    return any(int(lo, 16) <= 10 <= int(hi, 16) for lo, hi in _BYTE_RANGE.findall(source))


# an anchor or look-around, by the source, where the standard library cannot parse it
_SEES_ENDS = re.compile(r"\$|\\[AZz]|\(\?<?[=!]")
_PIECE_ENDS = frozenset((C.AT_BEGINNING, C.AT_BEGINNING_STRING, C.AT_END, C.AT_END_STRING))


def _sees_piece_ends(p: PerlPattern) -> bool:
    """Whether a match in a line (or part) alone can depend on where that piece ends: an anchor
    other than a word boundary, or a look-around. Searched in the joined text, such a match can
    fail where the piece alone has it: a paragraph's ``income\\s+$`` takes the paragraph's
    newline and meets its end, where the joined text goes on with the next paragraph."""
    tree = parse_tree(p)
    if tree is None:
        return bool(_SEES_ENDS.search(p.source))
    return some(tree, lambda op, av: (op is C.AT and av in _PIECE_ENDS) or op is C.ASSERT or op is C.ASSERT_NOT)


def _per_piece(r: Rule) -> bool:
    """A body rule searched line by line, a rawbody rule part by part (bodylike): one whose
    expression can meet a newline."""
    return r.kind in ("body", "rawbody") and r.pattern is not None and _may_cross_lines(r.pattern.source, r.pattern.flags)


def _count_per_piece(finditer: Callable[[str], Any], pieces: Iterable[str], maxhits: int) -> int:
    """Matches counted in each piece (line, URI) alone, as SpamAssassin counts them, up to
    ``maxhits``."""
    n = 0
    for piece in pieces:
        n += sum(1 for _ in islice(finditer(piece), maxhits - n))
        if n >= maxhits:
            break
    return n


def _counts_header_matches(r: Rule) -> bool:
    """A header or mimeheader rule with tflags multiple: its value is its number of matches, up
    to maxhits (Check.pm's ``while ($hval =~ /.../g)``, MIMEHeader's ``_check``), not 0 or 1.
    (Not a negated one: Perl's ``!~`` under ``/g`` has no count to give.)"""
    return (r.kind in ("header", "mimeheader") and r.maxhits > 1 and not r.negate and not r.eval_fn
            and r.pattern is not None and not r.target.startswith("exists:"))


def _inside_line(text: str, s: int, e: int, matched: str) -> bool:
    """A match at text[s:e] lies inside one of the newline-joined lines, off both its ends."""
    return bool(s) and e < len(text) and text[s - 1] != "\n" and text[e] != "\n" and "\n" not in matched


def _never_empty(p: PerlPattern) -> bool:
    tree = parse_tree(p)
    return tree is not None and tree.getwidth()[0] > 0


def _searches(search: Callable[..., Any], text: str) -> Iterator[Any]:
    """``finditer(text)``'s matches for an expression that never matches the empty string, by
    ``search`` (its own search, or the same results: line_start_search) from each one's end."""
    pos = 0
    while True:
        found = search(text, pos)
        if found is None:
            return
        yield found
        pos = found.end()


LINE_START_MIN = 256  # characters of text from which line_start_search pays
_LOOKS_BEHIND = re.compile(r"\(\?<[=!]|\\A")


def line_start_search(p: PerlPattern) -> Callable[..., Any] | None:
    """``search(text, pos=0)`` with the same result as ``pattern.search`` for an expression that
    starts with a multi-line ``^`` (``^From:``, ``^(?!Accept-Language|...)``), or None for any
    other. Python's ``re`` tries such an expression at every character of the text (a 2 KB
    header block: 1,800 starts, 13 us); the same expression with a newline for its ``^``, over
    the text after a newline, is tried only where a newline is, found by ``re``'s literal
    scan. Its leftmost match starts where the original's does (a line start is a position
    after a newline of the longer text); the original is then matched there, so the match
    (span, groups) is its own. Not for an expression that can look behind its start (a
    look-behind, ``\\A``), nor for one whose ``^`` is a single branch's (``^a|b``)."""
    pattern, source = p.compiled, p.source
    if not isinstance(pattern, re.Pattern) or not pattern.flags & re.MULTILINE or not source.startswith("^") \
            or _LOOKS_BEHIND.search(source):
        return None
    tree = parse_tree(p)  # (None for an extended-syntax one: its newline would be white space)
    if tree is None or not len(tree) or tree[0] != (C.AT, C.AT_BEGINNING):
        return None
    try:
        after_newline = re.compile("\n" + source[1:], pattern.flags)
    except re.error:
        return None
    plain, anchored, find = pattern.search, pattern.match, after_newline.search

    def search(text: str, pos: int = 0) -> Any:
        if len(text) - pos < LINE_START_MIN:  # (a URI, a header's value: copying costs more)
            return plain(text, pos)
        hit = find("\n" + text, pos)
        if hit is None:
            return None
        return anchored(text, hit.start()) or plain(text, hit.start())  # (the second: never, by the above)
    return search


class _Texts:
    """The texts body-like rules run over, built on first use, with their lower-cased copies
    for the literal prefilter."""

    __slots__ = ("m", "_text", "_low", "_squeezed", "_present", "indexes", "hs_covered", "known",
                 "uri_settings", "_uris", "_lines", "_starts", "_part_values", "captures", "_rparts", "_seams")

    def __init__(self, m: SaMessage, indexes: dict[tuple[str, bool], FactorIndex[str]],
                 uri_settings: sauris.UriSettings) -> None:
        self.m = m
        self.indexes = indexes
        self.uri_settings = uri_settings
        self._uris: list[str] | None = None
        self._lines: list[str] | None = None
        self._starts: list[int] | None = None
        self._rparts: list[str] | None = None
        self._seams: list[int] | None = None
        self._text: dict[str, str] = {}
        self._low: dict[str, str] = {}
        self._squeezed: dict[str, str] = {}
        self._present: dict[tuple[str, bool], set[str]] = {}
        self._part_values: dict[tuple[str, bool], list[str]] = {}
        # rules whose value the Hyperscan pass already settled for this message: a rule in here
        # that was not given a value is a candidate, and only its own expression is left to run
        self.hs_covered: frozenset[str] | set[str] = frozenset()
        self.known: Callable[[str], int | None] = _NOTHING.get  # the message's memo: a rule's value once known
        # tags set by capture rules' matches (``(?<NAME>...)``), read by template rules (``%{NAME}``)
        self.captures: dict[str, list[str]] = {}

    def present(self, kind: str, squeezed: bool) -> set[str]:
        """Rules (of this kind and factor domain) one of whose factors occurs in the text."""
        key = (kind, squeezed)
        p = self._present.get(key)
        if p is None:
            p = self._present[key] = self.indexes[key].present(self.squeezed(kind) if squeezed else self.low(kind))
        return p

    def part_index(self) -> list[dict[str, list[str]]]:
        """Each MIME part's headers by lower-cased name, built once per message."""
        idx: list[dict[str, list[str]]] | None = self.m.cache.get("part_index")
        if idx is None:
            idx = []
            for part in self.m.part_headers:
                d: dict[str, list[str]] = {}
                for n, x in part:
                    d.setdefault(n.lower(), []).append(x)
                idx.append(d)
            self.m.cache["part_index"] = idx
        return idx

    def part_values(self, lname: str, raw: bool) -> list[str]:
        """The first value of a header in each MIME part that has it, as a mimeheader rule
        searches it (decoded unless ``raw``, octets), once per message: a dozen rules read
        Content-Type, each of them in every part."""
        key = (lname, raw)
        got = self._part_values.get(key)
        if got is None:
            got = [octets(vals[0] if raw else decode_header_value(vals[0]))
                   for part in self.part_index() if (vals := part.get(lname))]
            self._part_values[key] = got
        return got

    def header_text(self, spec: str) -> str | None:
        """What a header rule on ``spec`` searches (octets); None when there is no such header."""
        h = self.m.rule_header(spec)
        return None if h is None else octets(h)

    def text(self, kind: str) -> str:
        """The text of a body kind (body, rawbody, uri, full), built once per message."""
        t = self._text.get(kind)
        if t is None:
            m = self.m
            if kind == "body":
                # SpamAssassin's lines: UTF-8 octets (rawbody and full are bytes too), lines
                # over 2,048 bytes split (each piece a line of its own here)
                t = "\n".join(x[:-1] if x[-1:] == "\n" else x for x in body_lines(m))
            elif kind == "rawbody":
                t = "\n".join(self.rawbody_parts())
            elif kind == "uri":
                t = "\n".join(self.uris())
            else:
                t = m.full
            self._text[kind] = t
        return t

    def body_lines(self) -> list[str]:
        """SpamAssassin's body lines (saview.body_lines, octets, each with its newline where it
        has one): a body rule runs on each alone there, so a match must not run from one line
        into the next, nor see past a line's ends."""
        got = self._lines
        if got is None:
            got = self._lines = list(body_lines(self.m))
        return got

    def line_starts(self) -> list[int]:
        """Where each of body_lines() begins in the body text (they are joined by one newline,
        their own taken off)."""
        got = self._starts
        if got is None:
            got, at = [], 0
            for ln in self.body_lines():
                got.append(at)
                at += len(ln) - (ln[-1:] == "\n") + 1
            self._starts = got
        return got

    def rawbody_parts(self) -> list[str]:
        """Each text part's rawbody as the rules read it (lines cut at MAX_LINE); joined by a
        newline they are the rawbody text. SpamAssassin runs a rawbody rule on each part's
        pieces alone (Message::get_decoded_body_text_array), so no match runs from one part
        into the next."""
        got = self._rparts
        if got is None:
            got = self._rparts = ["\n".join(ln[:MAX_LINE] for ln in p.split("\n")) for p in self.m.rawbody_parts]
        return got

    def at_seam(self, s: int, e: int) -> bool:
        """Whether a match at text[s:e] of the rawbody text holds or touches a newline that joins
        two parts (where a \\s, $, look-around or negated class could have met it)."""
        seams = self._seams
        if seams is None:
            seams, at = [], -1
            for p in self.rawbody_parts()[:-1]:
                at += len(p) + 1
                seams.append(at)
            self._seams = seams
        if not seams:
            return False
        i = bisect_right(seams, e) - 1  # the last seam at or before the match's end
        return i >= 0 and seams[i] + 1 >= s

    def part_hit(self, search: Callable[..., Any], ends: bool = False) -> bool:
        """A rawbody rule's search part by part, as SpamAssassin runs it: the joined text's
        first match, where it keeps off the seams between parts; else each part alone.
        ``ends``: the expression can see a part's ends (engine._sees_piece_ends), so no match
        in the joined text does not rule out one in a part alone."""
        hit = search(self.text("rawbody"))
        if hit is None:
            return ends and any(search(p) is not None for p in self.rawbody_parts())
        if not self.at_seam(hit.start(), hit.end()):
            return True
        return any(search(p) is not None for p in self.rawbody_parts())

    def line_hit(self, search: Callable[..., Any], ends: bool = False) -> bool:
        """A body rule's search, line by line as SpamAssassin runs it, at the cost of one search
        of the joined text: a match inside one line, off both its ends, is a match on that line;
        one that touches or crosses a line end (where a newline, not the line's end, met its
        \\s, [^x], \\W, look-around or $) is tried again on its first line alone, then the
        search goes on after that line. ``ends``: the expression can see a line's ends
        (engine._sees_piece_ends), so the joined text without a match inside one line does not
        rule out a match in a line alone: then every line is searched alone."""
        text = self.text("body")
        pos = 0
        while pos <= len(text):
            hit = search(text, pos)
            if hit is None:
                return ends and any(search(ln) is not None for ln in self.body_lines())
            s, e = hit.span()
            if _inside_line(text, s, e, hit.group()):
                return True
            lines, starts = self.body_lines(), self.line_starts()
            i = bisect_right(starts, s) - 1
            ls = starts[i]
            le = ls + len(lines[i]) - (lines[i][-1:] == "\n")
            if search(lines[i]) is not None:
                return True
            if ends:
                return any(search(ln) is not None for ln in lines)
            pos = le + 1
        return False

    def uris(self) -> list[str]:
        """What the uri rules run over: SpamAssassin's URI list (sauris), built on first use."""
        u = self._uris
        if u is None:
            m = self.m
            u = self._uris = [octets(x) for x in
                              self.uri_settings.uri_list([m.body], [x for f in m.html_all for x in f.uris])]
        return u

    def low(self, kind: str) -> str:
        t = self._low.get(kind)
        if t is None:
            t = self._low[kind] = self.text(kind).lower()
        return t

    def squeezed(self, kind: str) -> str:
        t = self._squeezed.get(kind)
        if t is None:
            t = self._squeezed[kind] = squeeze(self.text(kind))
        return t


# the builtins of generated meta code: none but ``__import__``. Code that a compiled module
# (docs/decisions/0049-compiled-hot-path.md) runs from a generated function finds its builtins
# in that function's frame, and ``re`` imports its template parser on first use (re.sub).
_GENERATED_BUILTINS: dict[str, Any] = {"__import__": __import__}
_NOTHING: dict[str, int] = {}
TEMPLATE_CACHE = 256  # a template rule's compiled expressions kept, one per set of tag values


def _never(t: Any, m: Any, ex: Any, v: Any) -> int:
    return 0


# META_VALUE: a meta's value is its expression's, as SpamAssassin keeps it (got_hit's value): a
# truth value (a comparison, ``!``) 1 or 0, else the number (``A + B`` with both hit: 2; Perl's
# ``&&``/``||`` give back an operand, as Python's ``and``/``or`` do). Another meta reads that
# number (``__N >= 2``); the meta's score counts once.
def meta_value(x: Any) -> Any:
    return 1 if x is True else x or 0


def _atleast(v: Callable[[str], int], names: tuple[str, ...], need: int) -> bool:
    """Whether at least ``need`` of these 0/1-valued rules are true, computing them in order
    and stopping once the answer is known."""
    left = len(names)
    got = 0
    for n in names:
        if got >= need:
            return True
        if got + left < need:
            return False
        got += 1 if v(n) else 0
        left -= 1
    return got >= need


# A compiled rule: (texts, message, extras, value-of-another-rule) -> its value (a hit count, a
# meta's value: META_VALUE)
RuleFn = Callable[[_Texts, SaMessage, dict[str, Any], Callable[[str], Any]], Any]
# The scored metas' function: (memo, value-of-a-rule, rule functions, texts, message, extras) -> None
AllMetas = Callable[[dict[str, Any], Callable[[str], Any], dict[str, RuleFn], _Texts, SaMessage, dict[str, Any]], None]


def _usable_rules(rs: RuleSet, skip: frozenset[str]) -> tuple[dict[str, Rule], dict[str, str], list[str]]:
    """The rules an engine runs (those a scored rule needs, without the skipped and the
    unsupported), the unsupported with their reasons, and the disabled (needed by no scored
    rule)."""
    unsupported = dict(rs.unsupported)
    rules = dict(rs.rules)
    for name in skip:
        if rules.pop(name, None) is not None:
            unsupported[name] = "disabled by the rules.skip_rules setting"
    # a score of 0 disables a rule (an administrator's `score NAME 0`), and the metas that read
    # it read it as 0, as in SpamAssassin: it ran for them, and a rule switched off for its false
    # positives still scored through its metas
    zeroed = sorted(n for n in rs.zero_scored if rules.pop(n, None) is not None)
    for name, r in list(rules.items()):
        if r.kind in ("header", "mimeheader") and r.target:
            spec = r.target.removeprefix("exists:")
            hname, _, mod = spec.partition(":")
            if r.target.startswith("exists:"):
                mod = ""
            if hname.startswith(UNSUPPORTED_HEADERS) or mod not in SUPPORTED_MODS:
                unsupported[name] = f"pseudo-header or modifier {r.target!r} is not implemented"
                del rules[name]
    # metas on unsupported rules are unsupported (again, after the header pass), and so are
    # template rules on unsupported capture rules
    changed = True
    while changed:
        changed = False
        for name, r in list(rules.items()):
            if r.kind == "meta" or r.templates:
                bad = [d for d in r.deps if d in unsupported]
                if bad:
                    unsupported[name] = f"depends on unsupported {', '.join(bad[:3])}"
                    del rules[name]
                    changed = True
    # only what a scored rule needs runs (SpamAssassin skips score-0 rules too)
    needed: set[str] = set()
    stack = [n for n, r in rules.items() if r.score != 0 and not n.startswith("__")]
    while stack:
        n = stack.pop()
        if n in needed or n not in rules:
            continue
        needed.add(n)
        stack.extend(rules[n].deps)
    return {n: r for n, r in rules.items() if n in needed}, unsupported, sorted((set(rules) - needed) | set(zeroed))


def _pattern_rules(rules: dict[str, Rule]) -> list[Rule]:
    """The body-like rules that are one regular expression over a text: the prefilters' and
    Hyperscan's."""
    return [r for r in rules.values() if r.kind in BODY_KINDS and not r.eval_fn and r.pattern is not None]


def _hyperscan_rules(rules: dict[str, Rule]) -> tuple[list[tuple[Rule, str]], dict[str, tuple[tuple[str, int], ...]]]:
    """The rules Hyperscan's databases take, each with its text kind or header spec, and per
    header spec the rules that match when the message has no such header, with their values."""
    # the rules that are one regular expression over a text, and the header rules over the long
    # header texts (HS_HEADERS; those on ALL alone cost 0.27 ms a message on Python's ``re``)
    # and over the headers with many rules (HS_HEADER_MIN_RULES)
    # (not capture rules: their matches must run, an absent header's too, to set their tags)
    pattern_rules = _pattern_rules(rules)
    plain_header = [r for r in rules.values()
                    if r.kind == "header" and not r.negate and not r.eval_fn and r.pattern is not None
                    and not r.target.startswith("exists:") and not capture_names(r)]
    per_spec = Counter(r.target for r in plain_header)
    hs_specs = {t for t, k in per_spec.items() if t in HS_HEADERS or k >= HS_HEADER_MIN_RULES}
    hs_rules = [(r, r.kind) for r in pattern_rules] + [(r, r.target) for r in plain_header if r.target in hs_specs]
    # a header spec's rules when the message has no such header: the value each then takes (its
    # pattern over its if-unset text, "" by default), known when the rules load
    unset_hits: dict[str, tuple[tuple[str, int], ...]] = {}
    for r in plain_header:
        unset = r.if_unset if r.if_unset is not None else ""
        if r.target in hs_specs and r.pattern is not None and r.pattern.compiled.search(unset) is not None:
            n = sum(1 for _ in islice(r.pattern.compiled.finditer(unset), r.maxhits)) if _counts_header_matches(r) else 1
            unset_hits[r.target] = (*unset_hits.get(r.target, ()), (r.name, n))
    return hs_rules, unset_hits


class RuleEngine:
    """Rules run lazily: every scored rule is computed for each message; a rule that scores
    nothing itself (``__NAME``, or score 0) is computed only when a meta asks for its value,
    once per message. Metas evaluate ``&&``/``||`` with short-circuit, cheapest operand first,
    so a costly sub-rule runs only when the rest of its meta could still make it matter. The
    hits are those of running every rule (``run(m, lazy=False)``, kept as the reference)."""

    # the metas run as the C program where it is built (metavm); False: as generated Python
    # (set before the metas are compiled: the tests compare the two)
    native_metas = True

    def __init__(self, rs: RuleSet, exclude_scores: frozenset[str] = frozenset(),
                 skip: frozenset[str] = frozenset(), hs_cache: Path | None = None) -> None:
        with shared_trees():  # each pattern parsed once for all its prefilters
            self._build(rs, exclude_scores, skip, hs_cache)

    def _build(self, rs: RuleSet, exclude_scores: frozenset[str], skip: frozenset[str], hs_cache: Path | None) -> None:
        self.ruleset = rs
        self.rules, self.unsupported, self.disabled = _usable_rules(rs, skip)
        self.local_scores = frozenset(n for n in rs.local_scores if n in self.rules)
        self.exclude_scores = exclude_scores | {n for n, r in self.rules.items() if r.eval_fn == "check_bayes"}
        self.extras: dict[str, Any] = {"freemail_domains": rs.freemail,
                                       "freemail_lists": saeval.freemail_lists(rs.freemail)}
        # SpamAssassin's URI list for the uri rules (util_rb_tld, redirector_pattern)
        # (a rule set without util_rb_tld lines, local directories alone: the Public Suffix List's)
        self.uri_settings = sauris.UriSettings(rs.tlds or psl.top_level_domains(), [p.compiled for p in rs.redirectors])
        self.extras["uri_settings"] = self.uri_settings
        self.extras["wlbl"] = wlbleval.Lists.of(rs)  # WLBLEval's lists (enlist_addrlist, ...)
        # necessary literals per body-like rule: in the lower-cased text, or else in the
        # squeezed text (matcher.squeeze); None when the rule must always run
        self.factors: dict[str, tuple[str, ...] | None] = {}
        self.squeezed: set[str] = set()
        self.pattern_rules = _pattern_rules(self.rules)
        # Hyperscan's rules and the absent headers' values are those of the rule set without
        # skip_rules: rule sets that differ only in it share one database file (Debian's takes
        # 1-2 minutes of a core to compile and about 30 MB), and an engine takes from a scan
        # only the rules it has (_hs_ready). Both from the one set, so that every header text
        # an engine scans has the values of all its rules when the header is absent.
        self.hs_rules, self.unset_hits = _hyperscan_rules(self.rules if not skip else _usable_rules(rs, frozenset())[0])
        for r in self.pattern_rules:
            if r.pattern is not None:
                f = required_factors(r.pattern)
                sq = required_squeezed_factors(r.pattern)
                if sq is not None and (f is None or min(map(len, sq)) > min(map(len, f))):
                    self.squeezed.add(r.name)
                    f = sq
                self.factors[r.name] = f
        # Two more prefilters, both patterns that match wherever the rule can: the characters
        # possible at each of a match's first positions (matcher.position_pattern, fixed width,
        # for every rule: measured a small gain even after the literal factors), and for rules
        # without a factor a relaxed copy of the rule (matcher.relaxed_pattern; for rules with a
        # factor it costs more than it saves, measured).
        self.relaxed: dict[str, re.Pattern[str]] = {}
        self.position: dict[str, re.Pattern[str]] = {}
        for n, f in self.factors.items():
            pattern = self.rules[n].pattern
            if pattern is None:
                continue
            rx = position_pattern(pattern, POSITIONS)
            if rx is not None:
                self.position[n] = rx
            rx = relaxed_pattern(pattern) if f is None else None
            if rx is not None:
                self.relaxed[n] = rx
        # RE2 for the long expressions (look-alike letters, form fields): on the Python path,
        # ``re`` takes up to 2 ms a message for one of them (re2filter.py, ADR 0048)
        self.re2: dict[str, re2filter.Prefilter] = {}
        # a body rule searched line by line (a rawbody rule part by part: bodylike): RE2 reads
        # the joined text with its anchors widened to every line's ends (re2filter._Emitter), and
        # this one, exact where it can be, answers for one line alone
        self.re2_one: dict[str, re2filter.Prefilter] = {}
        for r in self.pattern_rules:
            if r.pattern is not None and len(r.pattern.source) >= re2filter.MIN_SOURCE:
                lines = _per_piece(r)
                pf = re2filter.prefilter(r.pattern, lines)
                if pf is not None:
                    self.re2[r.name] = pf
                    one = re2filter.prefilter(r.pattern) if lines else None
                    if one is not None and one.expression != pf.expression:
                        self.re2_one[r.name] = one
        # look-ahead-led expressions (the look-alike rules, ``(?!unsubscribe)<U><N>...``): RE2
        # finds where they can start, ``re`` confirms there (re2filter.lead_search); the same
        # results, without ``re`` trying the look-ahead and the letters at every position
        self.lead: dict[str, Callable[..., Any]] = {}
        for r in self.pattern_rules:
            if r.pattern is not None and not r.templates and not capture_names(r):
                lead = re2filter.lead_search(r.pattern)
                if lead is not None:
                    self.lead[r.name] = lead
        self.indexes = self._factor_indexes(frozenset())
        # the same for the rules a Hyperscan scan does not settle (built with the databases):
        # with every other rule's factors in it, one pass of the automaton over a 5 KB body
        # went through thousands of occurrences of common short factors for a dozen rules
        self._hs_indexes: tuple[frozenset[str], dict[tuple[str, bool], FactorIndex[str]]] = (frozenset(), self.indexes)
        self.prefiltered = {k: sum(1 for n, f in self.factors.items() if f and self.rules[n].kind == k)
                            for k in BODY_KINDS}
        metas = self._order_metas()
        # the reference path: every rule, metas in dependency order as written
        self.metas = [(self.rules[n], fn) for n, fn in metas]
        self._fns: dict[str, RuleFn] = {n: self._compile(r) for n, r in self.rules.items()
                                        if r.kind != "meta"}
        self._costs: dict[str, tuple[float, float]] = {}
        self._plain: dict[str, RuleFn] | None = None  # the reference path's rules, built on first use
        self._hs_all: frozenset[str] = frozenset()  # rules a Hyperscan scan settles (cheap for the cost order)
        self._hs_for: object = None  # the matcher _hs_plan and _hs_all were built for
        self._meta_names = [n for n, _fn in metas]
        self._tmp = 0  # temporaries in generated meta code
        self._compile_metas()
        # scored rules, every one computed per message: plain rules first, then metas
        roots = [n for n, r in self.rules.items() if r.score != 0 and not n.startswith("__")
                 and (r.kind != "meta" or n in self._fns)]
        self.roots = sorted(roots, key=lambda n: self.rules[n].kind == "meta")
        self.plain_roots = [n for n in self.roots if self.rules[n].kind != "meta"]
        self._root_set = frozenset(self.roots)
        # scored rules whose score counts at each hit (tflags multiple; a meta's score counts once)
        self._per_hit = frozenset(n for n in self.roots
                                  if "multiple" in self.rules[n].tflags and self.rules[n].kind != "meta")
        # (name, function) of the plain scored rules: run() calls them without value()'s lookups
        self._plain_root_fns = [(n, self._fns[n]) for n in self.plain_roots]
        # where Bayes autolearn counts each scored rule's points (header, body, a meta's split)
        # and the rules that lift its minimums (tflags autolearn_force): once per rule set, so
        # that the rules layer only looks its hits up
        self.autolearn_areas, self.autolearn_force = autolearn_areas(self.rules, self.roots)
        self._hs_setup(hs_cache)

    def _factor_indexes(self, settled: frozenset[str]) -> dict[tuple[str, bool], FactorIndex[str]]:
        """Per text kind and factor domain (lower-cased or squeezed), the factors of the rules
        not in ``settled``."""
        return {(k, sq): FactorIndex({n: f for n, f in self.factors.items()
                                      if f and n not in settled and self.rules[n].kind == k
                                      and (n in self.squeezed) == sq})
                for k in BODY_KINDS for sq in (False, True)}

    def _compile_metas(self) -> None:
        self._costs = {}
        fns = dict(self._fns)
        for n in self._meta_names:
            fns[n] = self._compile_lazy_meta(self.rules[n])
        allmetas = self._compile_all_metas(fns)
        # swapped whole; a message in flight that sees one old and one new gets the same values
        # (the two differ only in the order operands are tried)
        self._fns, self._allmetas = fns, allmetas

    def _scored_metas(self) -> list[str]:
        """The scored metas in dependency order (sub-metas, ``__NAME`` or score 0, stay lazy:
        computing them all eagerly ran costly body rules nobody needed, 13.7 ms a message
        instead of 2.6, measured)."""
        return [n for n in self._meta_names if self.rules[n].score != 0 and not n.startswith("__")]

    def _compile_all_metas(self, fns: dict[str, RuleFn]) -> AllMetas:
        """``allmetas(memo, v, fns, texts, message, extras)``: every scored meta's value (META_VALUE)
        into the memo, in dependency order; each expression short-circuits, cheapest operand
        first, and computes a rule it needs only when the memo does not hold it yet. The C
        program (metavm.c, docs/decisions/0066-meta-program.md) when it is built, running the
        sub-metas too; else :meth:`_python_all_metas`. ``fns``: the rule functions the metas
        were compiled with (a sub-meta is run by the program while the engine still holds its
        generated function, so that a function put in its place is called instead)."""
        if metavm.NATIVE and self.native_metas:
            asm = metavm.Assembler()
            for n in self._meta_names:
                tree = self.rules[n].meta_tree
                assert tree is not None
                asm.segment(n, self._meta_plan(tree))
            prog = asm.build({n: fns[n] for n in self._meta_names}, self._scored_metas())
            return prog.run  # type: ignore[no-any-return]
        return self._python_all_metas()

    def _python_all_metas(self) -> AllMetas:
        """The scored metas in one generated Python function, in dependency order: a scored
        meta's value is a local variable that the metas after it read directly (one function for
        the set instead of two calls and a memo lookup per meta); sub-metas are their own lazy
        functions, called through ``v``. Each value is also put in the memo, where the hits are
        read."""
        self._tmp = 0
        local_of: dict[str, str] = {}  # scored meta -> its local variable in the function
        body: list[str] = ["    g = memo.get"]
        for n in self._scored_metas():
            tree = self.rules[n].meta_tree
            assert tree is not None
            expr = self.lazy_meta_source(tree, local_of=local_of)
            local = f"m{len(local_of)}"
            body.append(f"    {local} = {expr}")  # (sarules lets only a non-zero number divide)
            body.append(f"    {local} = 1 if {local} is True else {local} or 0")  # (META_VALUE)
            body.append(f"    memo[{n!r}] = {local}")  # read by atleast() and the plain rules' v()
            local_of[n] = local
        src = "def allmetas(memo, v, fns, t, m, ex):\n" + "\n".join(body) + "\n"
        ns: dict[str, Any] = {"__builtins__": _GENERATED_BUILTINS, "atleast": _atleast}
        exec(compile(src, "<rule metas>", "exec"), ns)
        fn = ns["allmetas"]
        return fn  # type: ignore[no-any-return]

    def _order_metas(self) -> list[tuple[str, Callable[[dict[str, int]], Any]]]:
        metas = {n: r for n, r in self.rules.items() if r.kind == "meta"}
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                raise ValueError(f"meta rule cycle through {n}")
            state[n] = 1
            for d in metas[n].deps:
                if d in metas:
                    visit(d)
            state[n] = 2
            order.append(n)

        for n in list(metas):
            try:
                visit(n)
            except ValueError as e:
                self.unsupported[n] = str(e)
        out = []
        for n in order:
            if n in self.unsupported:
                continue
            fn = eval(f"lambda h: {metas[n].meta}", {"__builtins__": _GENERATED_BUILTINS}, {})
            out.append((n, fn))
        return out

    # -- compiling ------------------------------------------------------------------------------
    def cost(self, name: str) -> float:
        """Estimated cost of computing a rule that is not yet known for the message."""
        return self.estimate(name)[0]

    def estimate(self, name: str) -> tuple[float, float]:
        """(expected cost, chance of being true) of a rule not yet computed for the message.
        Rules rarely hit: a plain rule counts as true one time in ten. Only the order of
        operands depends on these guesses, never a result."""
        e = self._costs.get(name)
        if e is not None:
            return e
        r = self.rules.get(name)
        if r is None or (r.kind == "meta" and name not in self._fns):
            e = (0.0, 0.0)  # not run: reads as 0
        elif r.score != 0 and not name.startswith("__"):
            e = (COST_KNOWN, P_HIT)
        elif r.kind == "meta":
            self._costs[name] = (COST_UNFILTERED, P_HIT)  # guards against cycles
            e = self._node_estimate(r.meta_tree) if r.meta_tree is not None else (COST_UNFILTERED, P_HIT)
        elif r.kind in BODY_KINDS and not r.eval_fn:
            cheap = self.factors.get(name) or name in self._hs_all
            e = (COST_FILTERED if cheap else COST_UNFILTERED, P_HIT)
        else:
            e = (COST_SIMPLE, P_HIT)
        self._costs[name] = e
        return e

    def _node_estimate(self, node: MetaNode) -> tuple[float, float]:
        kind = node[0]
        if kind == "name":
            return self.estimate(node[1])
        if kind == "num":
            return 0.0, 1.0 if float(node[1]) else 0.0
        if kind == "not":
            c, p = self._node_estimate(node[1])
            return c, 1.0 - p
        if kind == "neg":
            return self._node_estimate(node[1])
        op = node[1]
        if op in ("&&", "||"):
            items = self._ordered(self._chain(node, op), op)
            cost, reach = 0.0, 1.0  # reach: chance the chain gets this far
            for x in items:
                c, p = self._node_estimate(x)
                cost += reach * c
                reach *= p if op == "&&" else 1.0 - p
            return cost, reach if op == "&&" else 1.0 - reach
        (c1, _p1), (c2, _p2) = self._node_estimate(node[2]), self._node_estimate(node[3])
        return c1 + c2, P_HIT if op in (">", ">=") else 0.5

    @staticmethod
    def _chain(node: MetaNode, op: str) -> list[MetaNode]:
        items: list[MetaNode] = []
        # left to right, with a stack (a nested function calling itself would be a reference
        # cycle, left to the garbage collector)
        stack = [node]
        while stack:
            n = stack.pop()
            if n[0] == "op" and n[1] == op:
                stack.append(n[3])
                stack.append(n[2])
            else:
                items.append(n)
        return items

    def _ordered(self, items: list[MetaNode], op: str) -> list[MetaNode]:
        """Operands of a chain in the order of least expected cost: for ``&&`` ascending
        cost / chance of being false (the operand most likely to end the chain cheaply first),
        for ``||`` cost / chance of being true. Stable: ties keep the written order."""
        def key(x: MetaNode) -> float:
            c, p = self._node_estimate(x)
            stop = 1.0 - p if op == "&&" else p
            return c / max(stop, 0.01)
        return sorted(items, key=key)

    def lazy_meta_source(self, node: MetaNode, boolean: bool = True, local_of: dict[str, str] | None = None) -> str:
        """Python source for a meta over ``v(name)`` (a rule's value, computed on first use), from
        its plan (:meth:`_meta_plan`). ``local_of`` names the local variable of each meta already
        computed in the generated all-metas function."""
        return self._plan_source(self._meta_plan(node, boolean), local_of)

    def _meta_plan(self, node: MetaNode, boolean: bool = True) -> MetaNode:
        """How a meta is computed, rendered as Python (:meth:`_plan_source`) or as the C
        program's instructions (metavm.Assembler): the tree with ``("atleast", names, need)``
        for a bounded sum and ``("chain", op, items)`` for a re-ordered chain. Where only the
        truth value counts (the meta's result, operands of ``!`` and of a boolean
        ``&&``/``||``), a chain of ``&&`` or of ``||`` is re-ordered by expected cost: the truth
        value of such a chain does not depend on the order and rule values have no side
        effects. Elsewhere (``(A && B) + C``) the written order is kept, since Perl's ``&&``
        yields the value of its last operand."""
        kind = node[0]
        if kind in ("num", "name"):
            return node
        if kind == "not":
            return ("not", self._meta_plan(node[1], True))
        if kind == "neg":
            return ("neg", self._meta_plan(node[1], False))
        op = node[1]
        bounded = self._bounded_sum(node) if boolean else None
        if bounded is not None:
            names, need = bounded
            return ("atleast", tuple(names), need)
        if op in ("&&", "||") and boolean:
            return ("chain", op, [self._meta_plan(x, True) for x in self._ordered(self._chain(node, op), op)])
        # the left operand of && is returned only when false: any false value reads as 0
        return ("op", op, self._meta_plan(node[2], op == "&&"), self._meta_plan(node[3], False))

    def _plan_source(self, plan: MetaNode, local_of: dict[str, str] | None) -> str:
        kind = plan[0]
        if kind == "num":
            return str(plan[1])
        if kind == "name":
            local = local_of.get(plan[1]) if local_of else None
            if local is not None:  # a meta computed earlier in the all-metas function
                return local
            # the memo first (most values are known: scored rules, Hyperscan's zeros), the
            # value function only for a rule not computed yet
            self._tmp += 1
            t = f"_{self._tmp}"
            return f"({t} if ({t} := g({plan[1]!r})) is not None else v({plan[1]!r}))"
        if kind == "not":
            return f"(not {self._plan_source(plan[1], local_of)})"
        if kind == "neg":
            return f"(-{self._plan_source(plan[1], local_of)})"
        if kind == "atleast":
            return f"atleast(v, {plan[1]!r}, {plan[2]})"
        if kind == "chain":
            joiner = " and " if plan[1] == "&&" else " or "
            return "(" + joiner.join(self._plan_source(x, local_of) for x in plan[2]) + ")"
        pyop = {"&&": "and", "||": "or"}.get(plan[1], plan[1])
        return f"({self._plan_source(plan[2], local_of)} {pyop} {self._plan_source(plan[3], local_of)})"

    def _binary(self, name: str) -> bool:
        """True when a rule's value is always 0 or 1 (single-hit rules, negated headers, metas
        whose expression yields a truth value)."""
        r = self.rules.get(name)
        if r is None:
            return True  # not run: reads as 0
        if r.kind == "meta":
            return r.meta_tree is not None and self._binary_tree(r.meta_tree)
        return not r.eval_fn and (r.maxhits <= 1 or (r.kind in ("header", "mimeheader") and not _counts_header_matches(r)))

    def _binary_tree(self, node: MetaNode) -> bool:
        """True when a meta expression's value is always 0 or 1: a comparison, a ``!``, ``&&``
        and ``||`` of such values (Perl's give back an operand), 0 or 1, a rule whose value is.
        A sum, a product or a rule's hit count is kept as the meta's value, as SpamAssassin
        keeps it (``meta __N A + B + C`` then ``meta X __N >= 2``)."""
        kind = node[0]
        if kind == "num":
            return node[1] in ("0", "1")
        if kind == "name":
            return self._binary(node[1])
        if kind == "not":
            return True
        if kind == "neg":
            return False
        if node[1] in (">", ">=", "<", "<=", "==", "!="):
            return True
        if node[1] in ("&&", "||"):
            return self._binary_tree(node[2]) and self._binary_tree(node[3])
        return False

    def _bounded_sum(self, node: MetaNode) -> tuple[list[str], int] | None:
        """``(A + B + ...) > N`` (or ``>= N``) over rules whose values are 0 or 1: the operands
        cheapest first and the count needed, for ``atleast``, which stops as soon as the count
        is reached or can no longer be. Same truth value as the sum, fewer rules computed."""
        if node[0] != "op" or node[1] not in (">", ">=") or node[3][0] != "num":
            return None
        items = self._chain(node[2], "+")
        if len(items) < 3 or any(x[0] != "name" or not self._binary(x[1]) for x in items):
            return None
        try:
            bound = float(node[3][1])
        except ValueError:
            return None
        need = int(bound) + 1 if node[1] == ">" and bound == int(bound) else int(-(-bound // 1))
        names = sorted((x[1] for x in items), key=lambda n: self.estimate(n)[0])  # stable
        return names, need

    def _compile_lazy_meta(self, r: Rule) -> RuleFn:
        assert r.meta_tree is not None
        self._tmp = 0
        # one generated function per meta, called as the rule itself (no wrapper call)
        src = (f"def meta(t, m, ex, v):\n    g = t.known\n    try:\n"
               f"        r = {self.lazy_meta_source(r.meta_tree)}\n"
               f"    except ZeroDivisionError:\n        return 0\n"
               f"    return 1 if r is True else r or 0\n")  # (a meta's value: META_VALUE)
        ns: dict[str, Any] = {"__builtins__": _GENERATED_BUILTINS, "atleast": _atleast, "ZeroDivisionError": ZeroDivisionError}
        exec(src, ns)
        fn: RuleFn = ns["meta"]
        return fn

    def _compile(self, r: Rule, prefilter: bool = True) -> RuleFn:
        if r.templates:
            return self._compile_template(r)
        fn = self._compile_rule(r, prefilter)
        tags = capture_names(r)
        return self._capturing(r, fn, tags) if tags else fn

    def _compile_template(self, r: Rule) -> RuleFn:
        """A rule whose expression reads tags (``%{NAME}``, SpamAssassin 4's capture rules):
        its capture rules run first; with a tag unset the rule does not run (0), else its
        expression is the template filled with the tags' values for this message (compiled
        once per set of values). Its ``pattern``, each template read as any text, is only a
        prefilter: Hyperscan and the literal factors rule texts out with it."""
        assert r.template is not None
        template, names, setters = r.template, r.templates, r.deps
        compiled: dict[tuple[tuple[str, ...], ...], RuleFn] = {}

        def filled(t: _Texts, m: SaMessage, ex: dict[str, Any], v: Callable[[str], int]) -> int:
            for s in setters:
                v(s)  # SpamAssassin runs capture rules first (priority -10000)
            values = []
            for n in names:
                got = t.captures.get(n)
                if not got:
                    return 0  # "not running rule, dependent tag not defined"
                values.append(tuple(got))
            key = tuple(values)
            fn = compiled.get(key)
            if fn is None:
                try:
                    pattern = fill_templates(template, values)
                except PatternError:
                    fn = _never  # a value that makes the expression invalid: the rule does not run
                else:
                    fn = self._compile_rule(replace(r, pattern=pattern, templates=(), template=None), False)
                if len(compiled) >= TEMPLATE_CACHE:
                    compiled.clear()
                compiled[key] = fn
            return fn(t, m, ex, v)
        return filled

    def _capturing(self, r: Rule, fn: RuleFn, tags: list[str]) -> RuleFn:
        """A capture rule: where it hits, its matches set its tags, as SpamAssassin's do (the
        first match, or each up to maxhits with tflags multiple; empty captures dropped,
        values deduplicated in order; a later capture rule of the same tag replaces them)."""
        assert r.pattern is not None
        finditer, kind, maxhits, spec = r.pattern.compiled.finditer, r.kind, r.maxhits, r.target
        unset = r.if_unset if r.if_unset is not None else ""
        lname, _, mod = spec.partition(":")

        def pieces(t: _Texts, m: SaMessage) -> list[str]:
            if kind == "header":
                value = m.rule_header(spec)
                return [unset if value is None else octets(value)]
            if kind == "mimeheader":
                return t.part_values(lname.lower(), mod == "raw")
            if kind == "uri":
                return t.uris()
            if kind == "body":
                return t.body_lines()
            return [t.text(kind)]

        def capturing(t: _Texts, m: SaMessage, ex: dict[str, Any], v: Callable[[str], int]) -> int:
            hit: int = fn(t, m, ex, v)
            if hit:
                found: dict[str, list[str]] = {n: [] for n in tags}
                seen = 0
                for piece in pieces(t, m):
                    for mo in finditer(piece):
                        for n in tags:
                            val = mo.group(n)
                            if val and val not in found[n]:
                                found[n].append(val)
                        seen += 1
                        if seen >= maxhits:
                            break
                    if seen >= maxhits:
                        break
                t.captures.update(found)
            return hit
        return capturing

    def _compile_rule(self, r: Rule, prefilter: bool = True) -> RuleFn:
        if r.eval_fn:
            efn = saeval.EVALS[r.eval_fn]
            args = (r.kind, *r.eval_args) if r.eval_fn in saeval.WANTS_RULE_KIND else r.eval_args

            def evaluate(t: _Texts, m: SaMessage, ex: dict[str, Any], v: Callable[[str], int]) -> int:
                try:
                    return int(efn(m, args, ex) or 0)
                except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError, re.error):
                    return 0  # bad arguments in a rule file: the rule does not hit
            return evaluate
        if r.kind == "header" and r.target.startswith("exists:"):
            spec = r.target[7:]
            return lambda t, m, ex, v: 1 if m.header(spec) is not None else 0
        assert r.pattern is not None
        lead = self.lead.get(r.name) if prefilter else None  # (the reference path: ``re`` alone)
        own = self.rules.get(r.name)
        # (a template rule's filled expression is another pattern: its own search)
        search = lead if lead is not None and own is not None and own.pattern is r.pattern else r.pattern.compiled.search
        line_start = line_start_search(r.pattern) if prefilter and search is not lead else None
        if line_start is not None:
            search = line_start
        if prefilter and r.kind in ("header", "mimeheader", "uri"):  # (linear in a long value or URI: long_value_search)
            search = re2filter.long_value_search(r.pattern, search)
        if r.kind == "header":
            spec, negate = r.target, r.negate
            unset = r.if_unset if r.if_unset is not None else ""

            def header(t: _Texts, m: SaMessage, ex: dict[str, Any], v: Callable[[str], int]) -> int:
                value = m.rule_header(spec)
                return 1 if (search(unset if value is None else octets(value)) is not None) != negate else 0
            if not _counts_header_matches(r):
                return header
            finditer, maxhits = r.pattern.compiled.finditer, r.maxhits

            def header_count(t: _Texts, m: SaMessage, ex: dict[str, Any], v: Callable[[str], int]) -> int:
                value = m.rule_header(spec)
                text = unset if value is None else octets(value)
                if search(text) is None:  # (the search a single-hit rule makes decides most messages)
                    return 0
                return sum(1 for _ in islice(finditer(text), maxhits))
            return header_count
        if r.kind == "mimeheader":
            hname, _, mod = r.target.partition(":")
            lname, negate = hname.lower(), r.negate

            raw = mod == "raw"

            def mimeheader(t: _Texts, m: SaMessage, ex: dict[str, Any], v: Callable[[str], int]) -> int:
                for value in t.part_values(lname, raw):
                    if (search(value) is not None) != negate:
                        return 1
                return 0
            if not _counts_header_matches(r):
                return mimeheader
            mfinditer, mmaxhits = r.pattern.compiled.finditer, r.maxhits

            # MIMEHeader counts the matches of the first part that has any
            def mimeheader_count(t: _Texts, m: SaMessage, ex: dict[str, Any], v: Callable[[str], int]) -> int:
                for value in t.part_values(lname, raw):
                    if search(value) is not None:
                        return sum(1 for _ in islice(mfinditer(value), mmaxhits))
                return 0
            return mimeheader_count
        kind, maxhits = r.kind, r.maxhits
        finditer = r.pattern.compiled.finditer
        factors = self.factors.get(r.name) if prefilter else None
        squeezed = r.name in self.squeezed
        relaxed = self.relaxed.get(r.name) if prefilter else None
        position = self.position.get(r.name) if prefilter else None
        # squeezed factors need the whole text squeezed first (0.05 ms for a 5 KB message): when
        # a full Hyperscan pass leaves only a rule or two asking, the position pattern goes first
        position_first = position is not None and squeezed and factors is not None
        engine_indexes = self.indexes
        pf = self.re2.get(r.name) if prefilter else None
        may_match = pf.may_match if pf is not None else None
        one = self.re2_one.get(r.name, pf) if pf is not None else None
        one_match = one.may_match if one is not None else None
        # RE2's yes is the rule's yes (not for uri rules: RE2 reads the joined list, a match may
        # run from one URI into the next; per line below: the exact form asked of each line)
        settles = one is not None and one.exact and maxhits <= 1 and kind != "uri"
        per_uri = kind == "uri"
        # (rawbody and full: SpamAssassin's pieces hold several lines); an expression that can
        # neither match a newline nor look past one is left to the joined text as it is
        crosses = r.pattern is not None and _may_cross_lines(r.pattern.source, r.pattern.flags)
        per_line = kind == "body" and crosses
        # rawbody: a match must not run from one part into the next (Texts.part_hit)
        per_part = kind == "rawbody" and crosses
        ends = (per_line or per_part) and r.pattern is not None and _sees_piece_ends(r.pattern)
        if per_part:  # (RE2 reads the parts joined: its yes may run from one into the next)
            settles = False
        # tflags nosubject: the first line (the Subject, or the empty line SpamAssassin puts
        # there when there is none) is skipped
        nosubject = kind == "body" and "nosubject" in r.tflags
        if nosubject:
            settles = False
        # a single-hit body rule that can see a line's ends, with RE2's form for one line: each
        # line RE2 leaves open is searched alone (the joined search could miss a line's match)
        by_line = ends and per_line and not nosubject and maxhits <= 1 and one_match is not None

        name = r.name
        # (only a count reads it: a single-hit rule stops at its first match anyway)
        literals = literal_set(r.pattern) if prefilter and kind != "uri" and maxhits > 1 else None
        # matches counted by the line-start search from each match's end: finditer's matches
        # when none is empty (finditer then starts again where the last one ended)
        count_by_search = line_start is not None and _never_empty(r.pattern)

        def bodylike(t: _Texts, m: SaMessage, ex: dict[str, Any], v: Callable[[str], int]) -> int:
            if kind == "uri" and not t.uris():
                return 0
            if name not in t.hs_covered:  # (a Hyperscan candidate skips the Python prefilters)
                early = position_first and t.indexes is not engine_indexes  # (after a full Hyperscan pass)
                if early and position.search(t.text(kind)) is None:  # type: ignore[union-attr]
                    return 0
                if factors is not None and name not in t.present(kind, squeezed):
                    return 0  # none of the literals every match contains occurs: cannot match
                if position is not None and not early and position.search(t.text(kind)) is None:
                    return 0
                if relaxed is not None and relaxed.search(t.text(kind)) is None:
                    return 0
                if may_match is not None:
                    verdict = may_match(t.text(kind))  # None: RE2 could not read the text
                    if verdict is False:
                        return 0
                    if verdict and settles:
                        if not per_line:
                            return 1
                        # RE2 read the lines joined: its yes must hold on one line alone
                        answers = [one_match(ln) for ln in t.body_lines()]  # type: ignore[misc]
                        if True in answers:
                            return 1
                        if None not in answers:
                            return 0
            if by_line:  # the lines RE2 cannot rule out, each searched alone
                return 1 if any(one_match(ln) is not False and search(ln) is not None  # type: ignore[misc]
                                for ln in t.body_lines()) else 0
            if per_uri:  # each URI on its own, as SpamAssassin runs uri rules
                if maxhits <= 1:
                    for u in t.uris():
                        if search(u) is not None:
                            return 1
                    return 0
                return _count_per_piece(finditer, t.uris(), maxhits)
            if nosubject:
                if not per_line:  # the text after the first line (a "^" still meets its start)
                    text = t.text(kind)
                    start = text.find("\n") + 1 if t.m.subject else 0
                    if start == 0 and t.m.subject:
                        return 0
                    if maxhits <= 1:
                        return 1 if search(text, start) is not None else 0
                    return sum(1 for _ in islice(finditer(text, start), maxhits))
                lines = t.body_lines()[1 if t.m.subject else 0:]
                if maxhits <= 1:
                    return 1 if any(search(ln) is not None for ln in lines) else 0
                return _count_per_piece(finditer, lines, maxhits)
            text = t.text(kind)
            if maxhits <= 1:
                if per_line:
                    return 1 if t.line_hit(search, ends) else 0
                if per_part:
                    return 1 if t.part_hit(search, ends) else 0
                return 1 if search(text) is not None else 0
            if literals is not None and not per_line and not per_part:  # (/e/, <lcase_e>: counted in C)
                return min(sum(map(text.count, literals)), maxhits)
            if ends:
                return _count_per_piece(finditer, t.body_lines() if per_line else t.rawbody_parts(), maxhits)
            n = 0
            for found in (_searches(search, text) if count_by_search else finditer(text)):
                if per_line and not _inside_line(text, found.start(), found.end(), found.group()):
                    return _count_per_piece(finditer, t.body_lines(), maxhits)
                if per_part and t.at_seam(found.start(), found.end()):
                    return _count_per_piece(finditer, t.rawbody_parts(), maxhits)
                n += 1
                if n >= maxhits:
                    break
            return n
        return bodylike

    # -- Hyperscan (hsmatch.py, ADR 0047) -------------------------------------------------------
    def _hs_setup(self, cache_dir: Path | None) -> None:
        self.hs_loader: hsmatch.Loader | None = None
        # per text kind, the rules its scan settles at 0; and all of them at 0 in one dict: a
        # message's memo starts as a copy of it (3 us, where filling it kind by kind took 23 us
        # with its resizes); one assignment: read together
        self._hs_plan: tuple[dict[str, dict[str, int]], dict[str, int]] = ({}, {})
        self._hs_lock = threading.Lock()  # this engine's own: engine_for's lock is held for seconds
        if not hsmatch.available() or cache_dir is None:
            return
        # (a rule searched piece by piece that can see a piece's ends: Hyperscan reads the
        # joined text with its anchors dropped, hsmatch.entries_for)
        entries = hsmatch.entries_for((r.name, kind, r.pattern.source, r.pattern.flags,
                                       kind == r.kind and _per_piece(r) and _sees_piece_ends(r.pattern))
                                      for r, kind in self.hs_rules if r.pattern is not None)
        if entries:
            self.hs_loader = hsmatch.Loader(entries, cache_dir)

    def hyperscan(self, wait_s: float | None = 0.0) -> hsmatch.BodyMatcher | None:
        """Starts loading (or building) the Hyperscan databases in the background; with
        ``wait_s`` waits that long for them (None: until done). The matcher, or None."""
        if self.hs_loader is None:
            return None
        self.hs_loader.start()
        if wait_s != 0.0:
            self.hs_loader.wait(wait_s)
        return self.hs_loader.matcher

    def _hs_ready(self, hm: hsmatch.BodyMatcher) -> None:
        """Once the databases are there, rules they settle are cheap: metas are ordered again."""
        with self._hs_lock:
            if self._hs_for is not hm:
                # (the databases may be those of the rule set without skip_rules: a text none of
                # whose rules this engine has is not scanned)
                by_kind = {kind: zero for kind, names in hm.covered.items()
                           if (zero := dict.fromkeys((n for n in names if n in self.rules), 0))}
                all_zero = {n: 0 for zero in by_kind.values() for n in zero}
                self._hs_plan = (by_kind, all_zero)
                hs_all = frozenset(all_zero)
                self._hs_indexes = (hs_all, self._factor_indexes(hs_all))  # one assignment: read together
                self._hs_all = hs_all
                self._compile_metas()
                self._hs_for = hm  # last: a message that sees it skips this method and scans

    def _hs_pass(self, hm: hsmatch.BodyMatcher, texts: _Texts) -> dict[str, int]:
        """One scan per text: rules Hyperscan rules out read 0; its candidates are left for
        their own expression (``bodylike`` skips the Python prefilters for them). Returns the
        message's memo: every rule a scan settles, at 0, except its candidates and the rules of
        a text that could not be scanned."""
        hs_all, hs_indexes = self._hs_indexes
        by_kind, all_zero = self._hs_plan
        memo = all_zero.copy()
        covered: frozenset[str] | set[str] = hs_all
        for kind, zero in by_kind.items():
            if kind == "uri" and not texts.uris():
                continue
            text = texts.text(kind) if kind in BODY_KINDS else texts.header_text(kind)
            if text is None:  # no such header: each rule's value is known
                for n, hits in self.unset_hits.get(kind, ()):
                    if n in zero:
                        memo[n] = hits
                continue
            cands = hm.candidates(kind, text) if text else None
            if cands is None:
                # not valid UTF-8 (lone surrogates) or an empty text (a rule may match the
                # empty string): the rules' own expressions decide, through the Python prefilters
                covered = set(covered) - set(zero)
                for n in zero:
                    memo.pop(n, None)
                continue
            for n in cands:
                memo.pop(n, None)
        texts.hs_covered = covered
        if covered is hs_all:  # every scan ran: only the others' factors are asked for
            texts.indexes = hs_indexes
        return memo

    # -- per message ----------------------------------------------------------------------------
    def run(self, m: SaMessage, extra: dict[str, Any] | None = None, lazy: bool = True,
            known: Mapping[str, int] | None = None) -> EngineResult:
        """Hits of the scored rules. ``lazy=False`` is the reference path: every rule's
        expression runs over the whole text (no prefilter), every meta in written order.
        ``known``: values of rules no rule file defines here, which metas read (a SpamAssassin
        plugin's results that another layer has: ``SPF_PASS``, ``DKIM_VALID_AU``); a rule the
        files define keeps its own value."""
        t0 = time.perf_counter()
        ex = dict(self.extras)
        if extra:
            ex.update(extra)
        texts = _Texts(m, self.indexes, self.uri_settings)
        ex["uris"] = texts.uris  # (WLBLEval's URI host lists)
        memo: dict[str, Any] = {}  # (a meta's value may be a fraction: META_VALUE)
        hm = self.hs_loader.matcher if lazy and self.hs_loader is not None else None
        if hm is not None:
            if self._hs_for is not hm:
                self._hs_ready(hm)
            memo = self._hs_pass(hm, texts)
        if known:
            rules = self.rules
            memo.update({n: v for n, v in known.items() if n not in rules})
        fns, allmetas = self._fns, self._allmetas
        if lazy:
            def value(name: str) -> Any:
                r = memo.get(name)
                if r is None:
                    fn = fns.get(name)
                    r = memo[name] = fn(texts, m, ex, value) if fn is not None else 0
                return r

            texts.known = memo.get
            try:
                for name, fn in self._plain_root_fns:
                    if name not in memo:
                        memo[name] = fn(texts, m, ex, value)
                allmetas(memo, value, fns, texts, m, ex)
            finally:
                # ``value`` refers to itself through its closure, which holds the memo, the
                # texts and the message view: unbound here, they are freed as the message ends
                # instead of at the next garbage collection (a cycle per message made the
                # collector run every 3-4 messages)
                value = _no_value
        else:
            if self._plain is None:
                # capture rules first, as SpamAssassin runs them (the template rules read their tags)
                order = sorted((r for r in self.rules.values() if r.kind != "meta"), key=lambda r: not capture_names(r))
                self._plain = {r.name: self._fns[r.name] if r.kind not in BODY_KINDS or r.eval_fn else self._compile(r, False)
                               for r in order}
            for n, fn in self._plain.items():
                memo[n] = fn(texts, m, ex, memo.__getitem__)
            for r, mfn in self.metas:
                try:
                    memo[r.name] = meta_value(mfn(memo))
                except ZeroDivisionError:
                    memo[r.name] = 0
        # the few non-zero values of the ~2,000 in the memo: their names picked in C (compress
        # walks the keys and the values side by side), then looked up (a loop over the items, as
        # the compiled module ran the comprehension, took 0.9 % of a message's instructions;
        # dict(filter(itemgetter(1), items)) made a call and a tuple per entry)
        res = EngineResult(values={n: memo[n] for n in compress(memo, memo.values())})
        roots, per_hit = self._root_set, self._per_hit
        for name, count in res.values.items():  # the few non-zero values, not all 815 scored rules
            if name not in roots:
                continue
            r = self.rules[name]
            score = 0.0 if name in self.exclude_scores else r.score
            times = count if name in per_hit else 1
            res.hits.append(RuleHit(name, score, r.describe, 1 if r.kind == "meta" else count, times))
            res.score += score * times
        res.hits.sort(key=lambda x: (-x.score * x.times, x.name))
        res.score = round(res.score, 3)
        res.ms = (time.perf_counter() - t0) * 1000
        return res


def _no_value(name: str) -> Any:
    """What RuleEngine.run's ``value`` is unbound to after a message (the same signature)."""
    return 0


_engines: dict[tuple[Any, ...], RuleEngine] = {}
_build_cpu: dict[tuple[Any, ...], float] = {}  # engine key -> CPU seconds its build took
_lock = threading.Lock()
# (arguments) -> (monotonic time of the last look at the files, engine key)
_checked: dict[tuple[Any, ...], tuple[float, tuple[Any, ...]]] = {}
RECHECK_S = 1.0  # rule files are looked at (stat) at most this often, not on every message
# Rule sets kept per process. Per-domain rules settings (other rule directories, score set or
# skipped rules) make one engine each; the Debian set takes 10-20 s CPU to build, so a process
# that kept only one rebuilt it whenever the next message was for a domain with other settings.
MAX_ENGINES = 4
# A first build that failed (a rule file unreadable, say) is not tried again for every message
# (each try parses the whole set, 10-30 s of CPU under ``_lock``): messages within this many
# seconds get the same error at once (the rules layer tempfails them), then one tries again.
FAILED_RETRY_S = 60.0
_failed: dict[tuple[Any, ...], tuple[float, Exception]] = {}  # engine key -> (when, error)


def _raise_recent_failure(key: tuple[Any, ...]) -> None:
    failed = _failed.get(key)
    if failed is not None and (ago := time.monotonic() - failed[0]) < FAILED_RETRY_S:
        raise RuleBuildError(f"building the rule set failed {ago:.0f} s ago: {failed[1]}")


def engine_for(dirs: tuple[str, ...] = (), score_set: int = 2, include_default: bool = True,
               skip: tuple[str, ...] = (), sa_update: bool = False) -> RuleEngine:
    """The process-wide engine for a set of rule directories (rebuilt when a file changes).
    Up to MAX_ENGINES rule sets are kept (:func:`_keep`).

    Only the first build of a rule set runs in the caller's thread. When a file changes later,
    the engine built from the old files keeps answering while the new one builds in a
    background thread (the Debian set takes 10-30 s: messages waited that long, under the
    lock, inside the rules layer); a file that no longer parses leaves the old engine in use,
    with an error in the log, until the files change again. ``sa_update``: the default set
    from sa-update's directory once it has one (sarules.default_rule_dirs); the first update
    found, and each later one, is a change of files like any other."""
    from gateway_milter.antispam.sarules import default_rule_dirs

    args = (dirs, score_set, include_default, skip, sa_update)
    now = time.monotonic()
    seen = _checked.get(args)
    if seen is not None and now - seen[0] < RECHECK_S:
        eng = _engines.get(seen[1])
        if eng is not None:
            return eng
    paths: list[Path] = []
    if include_default:
        paths += default_rule_dirs(sa_update)
    # the administrator's directories after the stock set: their score lines win over the shipped
    # fitted scores (without the stock set there is nothing to override: none is local)
    local_from = len(paths) if include_default else None
    paths += [Path(d) for d in dirs]
    stamp = []
    for p in paths:
        if not p.exists():  # (its own mark: a set naming a missing directory is not a set without it)
            stamp.append((str(p), -1))
            continue
        files = rule_files(p) if p.is_dir() else [p]
        stamp += [(str(f), f.stat().st_mtime_ns) for f in files if f.exists()]
    key = (tuple(stamp), score_set, tuple(sorted(skip)))
    eng = _engines.get(key)
    if eng is None and seen is not None:
        old = _engines.get(seen[1])
        if old is not None:  # the files changed: the old engine answers while the new one builds
            _rebuild_in_background(args, key, paths, score_set, skip, local_from)
            _checked[args] = (now, seen[1])
            return old
    if eng is None:
        _raise_recent_failure(key)
        with _lock:
            eng = _engines.get(key)
            if eng is None:
                _raise_recent_failure(key)  # (another message's build failed while this one waited)
                t0 = time.thread_time()
                try:
                    rules = load_rules(paths, score_set, local_from)
                except Exception as e:
                    _failed[key] = (time.monotonic(), e)
                    raise
                _failed.pop(key, None)
                eng = RuleEngine(rules, skip=frozenset(skip), hs_cache=hs_cache_dir())
                eng.hyperscan()  # load or build the Hyperscan databases in the background
                cpu_s = time.thread_time() - t0
                _keep(args, key, eng, cpu_s)
                log.info("rules: rule set built in %.1f s CPU: %d rules, %d unsupported; %d rule sets kept",
                         cpu_s, len(eng.rules), len(eng.unsupported), len(_engines))
    _checked[args] = (now, key)
    return eng


def built_engine(dirs: tuple[str, ...], score_set: int = 2, include_default: bool = True,
                 skip: tuple[str, ...] = (), sa_update: bool = False) -> RuleEngine | None:
    """The engine :func:`engine_for` last answered for these arguments, without building one;
    None before the first build is done (a page that must not wait for it asks this first)."""
    seen = _checked.get((dirs, score_set, include_default, skip, sa_update))
    return _engines.get(seen[1]) if seen is not None else None


_rebuilding: dict[tuple[Any, ...], str] = {}  # engine key -> "building" | the error that stopped it
_wanted: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # arguments -> the newest engine key asked for
# guards the two dicts above only (never held during a build: ``_lock`` is, for a first build,
# and a message whose files changed must not wait for it)
_rebuild_lock = threading.Lock()


def _rebuild_in_background(args: tuple[Any, ...], key: tuple[Any, ...], paths: list[Path], score_set: int,
                           skip: tuple[str, ...], local_from: int | None) -> None:
    """Starts building the engine of changed rule files, once per set of file stamps. A build
    that finishes after the files changed again is thrown away (the newest stamps' build is
    kept), so older rules never replace newer ones."""
    with _rebuild_lock:
        _wanted[args] = key
        if key in _rebuilding or key in _engines:
            return
        _rebuilding[key] = "building"

    def build() -> None:
        t0 = time.thread_time()
        try:
            eng = RuleEngine(load_rules(paths, score_set, local_from), skip=frozenset(skip), hs_cache=hs_cache_dir())
            eng.hyperscan()
        except Exception as e:  # noqa: BLE001 - a rule file that no longer parses: the old engine stays
            with _rebuild_lock:
                _rebuilding[key] = f"{type(e).__name__}: {e}"
            log.error("rules: the changed rule files do not build (the rule set built before stays in use "
                      "until they change again): %s", f"{type(e).__name__}: {e}")
            return
        cpu_s = time.thread_time() - t0
        with _lock, _rebuild_lock:
            _rebuilding.pop(key, None)
            if _wanted.get(args) != key:
                return  # the files changed again meanwhile: the newer build is (or will be) kept
            _keep(args, key, eng, cpu_s)
            _checked[args] = (time.monotonic(), key)
        log.info("rules: rule set built again in the background in %.1f s CPU (files changed): %d rules, "
                 "%d unsupported", cpu_s, len(eng.rules), len(eng.unsupported))

    threading.Thread(target=build, daemon=True, name="rules-rebuild").start()


def rebuild_status() -> dict[tuple[Any, ...], str]:
    """Background rebuilds of changed rule files: engine key -> "building" or the error that
    stopped one (tests read it; the milter's log says the same)."""
    with _rebuild_lock:
        return dict(_rebuilding)


def _keep(args: tuple[Any, ...], key: tuple[Any, ...], eng: RuleEngine, cpu_s: float) -> None:
    """Adds a new engine (under ``_lock``). The engine these arguments had before (its files
    changed since) goes unless other arguments still use it; past MAX_ENGINES, the one that was
    cheapest to build goes (a small local set before the Debian one), the newest excepted."""
    checked = list(_checked.items())  # (other threads set entries without the lock)
    before = _checked.get(args)
    if before is not None and before[1] != key and not any(k == before[1] for a, (_, k) in checked if a != args):
        _engines.pop(before[1], None)
    _engines[key] = eng
    _build_cpu[key] = cpu_s
    while len(_engines) > MAX_ENGINES:
        victim = min((k for k in _engines if k != key), key=lambda k: _build_cpu.get(k, 0.0))
        del _engines[victim]
        log.warning("rules: more than %d rule sets in use (rules settings that differ per domain): dropped "
                    "the one cheapest to build (%.1f s CPU); it is built again when next needed",
                    MAX_ENGINES, _build_cpu.get(victim, 0.0))
    for k in [k for k in _build_cpu if k not in _engines]:
        del _build_cpu[k]
    for a, (_, k) in checked:
        if k not in _engines and a != args:
            _checked.pop(a, None)


def hs_cache_dir() -> Path | None:
    """Where the compiled Hyperscan databases are kept: ``GATEWAY_RULES_CACHE_DIR``, else
    ``cache/`` under the data directory; ``GATEWAY_RULES_HYPERSCAN=0`` turns Hyperscan off."""
    from gateway_milter import envconfig

    if not envconfig.env_bool("GATEWAY_RULES_HYPERSCAN", True):
        return None
    d = envconfig.env_str("GATEWAY_RULES_CACHE_DIR")
    if d:
        return Path(d)
    return envconfig.data_dir() / "cache"

