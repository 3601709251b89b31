"""RE2 as a prefilter for the rules whose Python expression is slow and that the Hyperscan pass
does not settle (ADR 0048).

A few SpamAssassin rules are huge alternations without a literal every match contains: the
look-alike-letter rules (``__MY_MALWARE``: 224,000 characters once its replace_tags are
expanded) and the form-filling rules (``__FILL_THIS_FORM_SHORT2``, each field name an
alternation, repeated). Hyperscan refuses them (pattern too long, or minutes to compile), and
Python's backtracking ``re`` tries every alternative at every position: up to 2 ms a message
for one rule. RE2 runs them as an automaton, in time linear in the text.

RE2 is not the judge: it answers "can this text match?" with an expression that matches
*at least* wherever the Python pattern does (look-around dropped, a back-reference read as any
text, Python's ``$`` read as RE2's multi-line ``$``, a repeat count RE2 refuses lowered); a
text it rejects cannot match, and on a text it accepts the Python pattern decides as before.
So the rule values are exactly those of the Python expressions (tests/unit/antispam/
test_re2filter.py checks the superset on hand-made cases and against the corpus).

The expression is built from the standard library's parse tree of the pattern (the patterns
are compiled with ``re.ASCII``: ``\\w``, ``\\d``, ``\\b`` and case folding are ASCII, as in RE2,
whose Unicode case folding only widens the match), so no regular-expression text is
re-parsed by hand here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from gateway_milter.antispam.matcher import P, parse_tree
from gateway_milter.antispam.perlre import PerlPattern
from gateway_milter.antispam.possessive import children as _children
from gateway_milter.antispam.possessive import some

import re._constants as C  # the standard library's own parser (Python 3.11+)

try:
    import re2 as _re2
except ImportError:  # pragma: no cover - the package is in requirements.txt
    _re2 = None
re2: Any = _re2

log = logging.getLogger(__name__)

MIN_SOURCE = 500  # rules with a shorter Python expression are cheap enough for ``re`` and its prefilters
MAX_REPEAT = 1000  # RE2's largest repeat count
# RE2's memory budget per expression: past it RE2 slows down, never fails. Its default of 8 MB,
# but 32 MB for the longest: at 8 MB the automaton of __MY_MALWARE (326,000 characters) runs out
# of room and RE2 falls back to its slow engine (109 against 4 µs a message)
MAX_MEM = 8 << 20
MAX_MEM_LONG = 32 << 20
LONG_EXPRESSION = 100_000
SPELL_OUT = 8  # a counted repeat of at most this many ...
SPELL_OUT_LEN = 200  # ... of a group this long is written out
_REPEATS = tuple(x for x in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)) if x is not None)
_ATOMIC = getattr(C, "ATOMIC_GROUP", None)
_POSSESSIVE = getattr(C, "POSSESSIVE_REPEAT", None)
# Python's ASCII \s, written out: RE2's \s lacks the vertical tab
_SPACE = "\\t\\n\\x0b\\f\\r "
_SPACE_CODES = (9, 10, 11, 12, 13, 32)
_CATEGORY: dict[Any, str] = {C.CATEGORY_DIGIT: "\\d", C.CATEGORY_NOT_DIGIT: "\\D", C.CATEGORY_SPACE: _SPACE,
                             C.CATEGORY_WORD: "\\w", C.CATEGORY_NOT_WORD: "\\W"}  # ASCII in both
_AT: dict[Any, str] = {C.AT_BEGINNING_STRING: "\\A", C.AT_END_STRING: "\\z",  # Python's \Z is the very end
                        C.AT_BOUNDARY: "\\b", C.AT_NON_BOUNDARY: "\\B"}  # both ASCII word boundaries


class Unsupported(ValueError):
    """A construct this translation has no superset for."""


def available() -> bool:
    return re2 is not None


def _char(c: int) -> str:
    return f"\\x{{{c:x}}}"


def _cased(chars: set[int]) -> set[int]:
    """Python's ASCII case folding of a set: a character matches when its lower-case form is
    the lower-case form of a member, so the set closed under ASCII case."""
    return chars | {ord(chr(c).swapcase()) for c in chars if c < 128 and chr(c).isalpha()}


class _Emitter:
    """The parse tree as RE2 syntax. ``exact`` stays True while every construct was written
    with the same meaning (case folding written out as classes, ``\\s`` with its vertical tab);
    anything widened (look-around, back-references, Python's ``$``, atomic groups, lowered
    repeat counts) clears it.

    ``lines``: the pattern is searched in each line (or part) alone, RE2 reads them joined by
    newlines. A line's ends are then where the joined text has a line start or end: after the
    newline that closes the line a ``$`` or ``\\Z`` still meets the line's end (SpamAssassin's
    form rules end in ``[-=_\\s]{1,100}$``, which takes that newline), and ``\\A`` meets any line's
    start. Each anchor is written as every place it can meet, which only widens."""

    def __init__(self, repeat_cap: int | None, tails: bool = False, lines: bool = False) -> None:
        self.cap = repeat_cap
        self.exact = True
        # only whether there is a match is read (not where it ends): a look-ahead, or Python's
        # $, with nothing after it in the pattern is written as what it looks at, consumed
        self.tails = tails
        self.lines = lines

    def seq(self, items: Any, ml: bool, icase: bool, tail: bool = False) -> str:
        """``tail``: nothing follows these items in the whole pattern."""
        last = len(items) - 1
        return "".join(self.item(op, av, ml, icase, tail and i == last) for i, (op, av) in enumerate(items))

    def _class(self, av: Any, icase: bool) -> str:
        if any(op is C.NEGATE for op, _a in av) and (C.CATEGORY, C.CATEGORY_NOT_SPACE) in av:
            return self._white_space_but(av)
        negate = False
        chars: set[int] = set()
        out: list[str] = []
        for op, a in av:
            if op is C.NEGATE:
                negate = True
            elif op is C.LITERAL:
                chars.add(a)
            elif op is C.RANGE:
                lo, hi = a
                if icase and lo < 128:
                    chars.update(range(lo, min(hi, 127) + 1))  # the ASCII part, to be case-closed
                    if hi >= 128:
                        out.append(_char(128) + "-" + _char(hi))
                else:
                    out.append(_char(lo) + "-" + _char(hi))
            elif op is C.CATEGORY and a is C.CATEGORY_NOT_SPACE:
                if negate or len(av) > 1:
                    raise Unsupported("\\S in a class")  # RE2's \S also takes \v
                return "[^" + _SPACE + "]"
            elif op is C.CATEGORY and a in _CATEGORY:
                out.append(_CATEGORY[a])
            else:
                raise Unsupported(str(op))
        if icase:
            chars = _cased(chars)
        out += [_char(c) for c in sorted(chars)]
        if not out:
            return "[\\x{0}-\\x{10ffff}]" if negate else "[^\\x{0}-\\x{10ffff}]"
        return "[" + ("^" if negate else "") + "".join(out) + "]"

    @staticmethod
    def _white_space_but(av: Any) -> str:
        """``[^\\S...]``: the white space the class's other members leave out (Python's ASCII
        \\s, written out: RE2's \\S also takes the vertical tab). SpamAssassin's
        ``[^\\S"]`` (TO_MALFORMED) is all white space."""
        def member(c: int, op: Any, a: Any) -> bool:
            if op is C.LITERAL:
                return bool(c == a)
            if op is C.RANGE:
                return bool(a[0] <= c <= a[1])
            if op is C.CATEGORY and a in _CATEGORY:
                return re.fullmatch(_CATEGORY[a] if a is not C.CATEGORY_SPACE else "\\s", chr(c), re.A) is not None
            raise Unsupported(str(op))
        others = [(op, a) for op, a in av if op is not C.NEGATE and (op, a) != (C.CATEGORY, C.CATEGORY_NOT_SPACE)]
        left = [c for c in _SPACE_CODES if not any(member(c, op, a) for op, a in others)]
        return "[" + "".join(_char(c) for c in left) + "]" if left else "[^\\x{0}-\\x{10ffff}]"

    def item(self, op: Any, av: Any, ml: bool, icase: bool, tail: bool = False) -> str:
        if op is C.LITERAL:
            if icase and av < 128 and chr(av).isalpha():
                return "[" + "".join(_char(c) for c in sorted(_cased({av}))) + "]"
            return _char(av)
        if op is C.NOT_LITERAL:
            return "[^" + "".join(_char(c) for c in sorted(_cased({av}) if icase else {av})) + "]"
        if op is C.ANY:
            return "."  # neither takes a newline without DOTALL; (?s) is carried over
        if op is C.IN:
            return self._class(av, icase)
        if op is C.AT:
            if self.lines and av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING, C.AT_END, C.AT_END_STRING):
                self.exact = False  # (in one line alone as well: its last newline starts a "line")
                return "(?m:^)" if av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING) else "(?m:^|$)"
            if av is C.AT_BEGINNING:
                return "(?m:^)" if ml else "\\A"
            if av is C.AT_END:
                if ml:
                    return "(?m:$)"
                if tail and self.tails:  # Python's $ is (?=\n?\Z): at the end, a last newline consumed
                    return "(?:\\n?\\z)"
                self.exact = False  # Python's $: the end, or before a last newline
                return "(?m:$)"
            if av in _AT:
                return _AT[av]
            raise Unsupported(str(av))
        if op is C.ASSERT and tail and self.tails and av[0] == 1:
            # a look-ahead with nothing after it (perlre's $, "(?=\n?\Z)"): there is a match
            # exactly where there is one with what it looks at consumed
            return "(?:" + self.seq(av[1], ml, icase, True) + ")"
        if op is C.ASSERT or op is C.ASSERT_NOT:
            self.exact = False  # look-around dropped: only widens
            return ""
        if op is C.BRANCH:
            return "(?:" + "|".join(self.seq(b, ml, icase, tail) for b in av[1]) + ")"
        if op is C.SUBPATTERN:
            _group, add, drop, sub = av
            dot = ("s" if add & re.S else "") + ("-s" if drop & re.S else "")
            inner_ml = (ml or bool(add & re.M)) and not drop & re.M
            inner_icase = (icase or bool(add & re.I)) and not drop & re.I
            return "(?" + dot + ":" + self.seq(sub, inner_ml, inner_icase, tail) + ")"
        if op is _ATOMIC:
            self.exact = False  # an atomic group can only fail where a plain one matches
            return "(?:" + self.seq(av, ml, icase, tail) + ")"
        if op in _REPEATS:
            return self._repeat(op, av, ml, icase)
        if op is C.GROUPREF:
            self.exact = False
            return "(?s:.*)"  # a back-reference: any text
        if op is C.GROUPREF_EXISTS:
            self.exact = False
            _cond, yes, no = av
            return "(?:" + self.seq(yes, ml, icase) + "|" + (self.seq(no, ml, icase) if no else "") + ")"
        raise Unsupported(str(op))

    def _repeat(self, op: Any, av: Any, ml: bool, icase: bool) -> str:
        lo, hi, sub = int(av[0]), int(av[1]), av[2]
        if op is _POSSESSIVE:
            self.exact = False  # possessive: like an atomic group
        inner = self.seq(sub, ml, icase)
        lazy = "?" if op is C.MIN_REPEAT else ""
        if hi != C.MAXREPEAT and hi <= SPELL_OUT and len(inner) >= SPELL_OUT_LEN:
            # a big group repeated a few times: written out, RE2 refuses the count
            # (``{5}`` of __FILL_THIS_FORM_LONG2's 13,000-character unit)
            need = ("(?:" + inner + ")") * lo
            rest = ""
            for _ in range(hi - lo):
                rest = "(?:" + inner + rest + ")?" + lazy
            return need + rest
        if self.cap is not None and lo > self.cap:
            lo, hi = self.cap, C.MAXREPEAT  # fewer repeats required: wider
            self.exact = False
        if lo > MAX_REPEAT or (hi != C.MAXREPEAT and hi > MAX_REPEAT):
            lo, hi = min(lo, MAX_REPEAT), C.MAXREPEAT
            self.exact = False
        q = f"{{{lo},}}" if hi == C.MAXREPEAT else f"{{{lo},{hi}}}"
        return "(?:" + inner + ")" + q + lazy


def superset_expression(p: PerlPattern, repeat_cap: int | None = None) -> tuple[str, bool] | None:
    """An RE2 expression that matches wherever ``p`` does, and whether it matches exactly
    where ``p`` does (None: no translation)."""
    tree = parse_tree(p) if isinstance(p.compiled, re.Pattern) else None  # not the regex module's syntax
    return None if tree is None else _expression(tree, p.compiled.flags, repeat_cap)


def _expression(tree: Any, compiled_flags: int, repeat_cap: int | None,
                tails: bool = False, lines: bool = False) -> tuple[str, bool] | None:
    """``tails``: for a search whose only answer is whether there is a match (_Emitter)."""
    # the flags as compiled: body rules are multi-line and some dot-all without a flag in the text
    st = tree.state.flags | (compiled_flags & (re.M | re.S))
    em = _Emitter(repeat_cap, tails, lines)
    try:
        body = em.seq(tree, bool(st & re.M), bool(st & re.I), True)
    except (Unsupported, RecursionError, OverflowError, KeyError):
        return None
    return ("(?s)" if st & re.S else "") + body, em.exact


def _compile(expression: str) -> Any:
    """``expression`` compiled by RE2 with the memory its length needs and no log lines;
    raises ``re2.error`` when RE2 refuses it."""
    opts = re2.Options()
    opts.log_errors = False
    opts.max_mem = MAX_MEM_LONG if len(expression) >= LONG_EXPRESSION else MAX_MEM
    return re2.compile(expression, opts)


class Prefilter:
    """``may_match(text)``: False only where the pattern cannot match, None where RE2 cannot
    read the text; ``exact``: its True is the pattern's answer too."""

    __slots__ = ("may_match", "exact", "expression")

    def __init__(self, may_match: Callable[[str], bool | None], exact: bool, expression: str) -> None:
        self.may_match = may_match
        self.exact = exact
        self.expression = expression


def prefilter(p: PerlPattern, lines: bool = False) -> Prefilter | None:
    """The RE2 prefilter of ``p``; None when RE2 is missing or takes no superset of ``p`` (the
    rule keeps the Python path). ``lines``: ``p`` is searched in each line or part alone, and
    the prefilter reads them joined (_Emitter)."""
    if re2 is None:
        return None
    tree = parse_tree(p) if isinstance(p.compiled, re.Pattern) else None  # parsed once for every try
    if tree is None:
        return None
    for cap in (None, 3, 2, 1):  # RE2 refuses some nested repeat counts: lowered, they widen
        got = _expression(tree, p.compiled.flags, cap, tails=True, lines=lines)  # (may_match: only whether)
        if got is None:
            return None
        expr, exact = got
        try:
            compiled = _compile(expr)
        except re2.error:
            continue
        return Prefilter(_searcher(compiled), exact, expr)
    log.debug("rules: RE2 takes no form of %.60s", p.source)
    return None


# a look-ahead at the start, after any inline flags: the only patterns lead_search can take
_LEADS_WITH_LOOKAHEAD = re.compile(r"(?:\(\?[a-zA-Z]+\))*\(\?[=!]")


def lead_search(p: PerlPattern) -> Callable[..., re.Match[str] | None] | None:
    """``search(text, pos=0)`` with the same result as ``p``'s own, for a pattern that is
    look-aheads followed by a part RE2 takes exactly (SpamAssassin's look-alike rules:
    ``(?!unsubscribe)<U><N>...``, where the first pass drops the look-ahead and so lets every
    text with the plain word through). RE2 finds the leftmost start where that part matches; the
    look-aheads can only rule a start out, so ``p`` itself is tried there, anchored, and the
    search goes on from the next character when it fails. Before that start the part does not
    match, so neither does ``p``: the first start where ``p`` matches is the leftmost, and its
    anchored match is the match ``p.search`` returns. None when the pattern has no such form."""
    if re2 is None or not isinstance(p.compiled, re.Pattern) or not _LEADS_WITH_LOOKAHEAD.match(p.source):
        return None  # (a look at the text first: parsing all of a rule set's trees costs 0.75 s)
    tree = parse_tree(p)
    if tree is None:
        return None
    items = list(tree)
    k = 0
    while k < len(items) and items[k][0] in (C.ASSERT, C.ASSERT_NOT) and items[k][1][0] == 1:
        k += 1  # look-aheads (direction 1) at the start
    if k == 0 or k == len(items):
        return None
    rest = P.SubPattern(tree.state, items[k:])
    got = _expression(rest, p.compiled.flags, None)
    if got is None or not got[1]:
        return None  # RE2 would widen the rest: its leftmost start could come too early
    try:
        compiled = _compile(got[0])
    except re2.error:
        return None
    find = _finder(compiled)
    anchored, whole = p.compiled.match, p.compiled.search

    def search(text: str, pos: int = 0) -> re.Match[str] | None:
        # RE2 reads the text's UTF-8 once (given a str it encodes it again on every call, three
        # times the cost of the search); offsets are converted where the text is not ASCII
        try:
            ascii_ = text.isascii()
            data = text.encode("utf-8")
            at = pos if ascii_ else len(text[:pos].encode("utf-8"))
            seen_at, seen = at, pos  # a byte offset and its character offset, to count on from
            while True:
                at = find(data, at)
                if at < 0:
                    return None
                if ascii_:
                    start = at
                else:  # (counted from the last start, not from 0: linear in the text, however many starts)
                    start = seen + len(data[seen_at:at].decode("utf-8"))
                    seen_at, seen = at, start
                hit = anchored(text, start)
                if hit is not None:
                    return hit
                if start >= len(text):
                    return None
                at += 1 if ascii_ else len(text[start].encode("utf-8"))  # the next character
        except (UnicodeEncodeError, UnicodeDecodeError, ValueError, TypeError, re2.error):
            return whole(text, pos)  # lone surrogates (RE2 reads UTF-8 only): Python alone
    return search


def _binding_search(compiled: Any) -> Callable[[bytes, int], int] | None:
    """``find(data, pos)``: the byte offset where ``compiled``'s leftmost match in the UTF-8
    ``data`` from ``pos`` starts, or -1; asked of the package's RE2 binding directly. The
    package's ``search`` wraps the same call in Python that encodes a str again, turns every
    span's byte offsets into character offsets and builds a match object, about 8 us a call
    on a 35-character To header against 2 us for the call alone (ADR 0048), and the rules read
    only whether there is a match (or, for ``lead_search``, where it starts). None when the
    binding is not what this was written for (another release of the package): then the
    package's own ``search``."""
    regexp = getattr(compiled, "_regexp", None)
    match = getattr(regexp, "Match", None)
    anchor = getattr(getattr(getattr(re2, "_re2", None), "RE2", None), "Anchor", None)
    unanchored = getattr(anchor, "UNANCHORED", None)
    if match is None or unanchored is None:
        return None
    try:
        if match(unanchored, b"", 0, 0)[0] not in ((0, 0), (-1, -1)):  # (a call of the expected shape)
            return None
    except (TypeError, ValueError, IndexError, re2.error):  # another signature: the package's search
        return None

    def find(data: bytes, pos: int) -> int:
        return int(match(unanchored, data, pos, len(data))[0][0])
    return find


def _wrapped_search(compiled: Any) -> Callable[[bytes, int], int]:
    """``_binding_search``'s answers through the package's own ``search``."""
    search = compiled.search

    def find(data: bytes, pos: int) -> int:
        found = search(data, pos)
        return -1 if found is None else int(found.start())
    return find


def _finder(compiled: Any) -> Callable[[bytes, int], int]:
    """``find(data, pos)`` for ``compiled``: through the binding where it has the expected
    shape, else through the package's ``search``."""
    return _binding_search(compiled) or _wrapped_search(compiled)


def _searcher(compiled: Any) -> Callable[[str], bool | None]:
    find = _finder(compiled)

    def may_match(text: str) -> bool | None:
        try:
            return find(text.encode("utf-8"), 0) >= 0
        except (UnicodeEncodeError, ValueError, TypeError, re2.error):
            return None  # lone surrogates (RE2 reads UTF-8 only), or RE2 failing: Python decides
    return may_match


# a header value at least this long is searched through RE2 (long_value_search)
LONG_VALUE = 256


def _unbounded_repeat(op: Any, av: Any) -> bool:
    return op in _REPEATS and av[1] == C.MAXREPEAT


def nested_repeats(items: Any) -> bool:
    """Whether an unbounded repeat holds another (``<\\S+(?:!\\S+){1,}>``): where the inner one
    can end in several places on each round, Python's backtracking ``re`` tries every way of
    cutting a text that does not match, exponentially many; Perl's engine remembers the places
    it has failed at (its super-linear cache), so SpamAssassin does not. TO_MALFORMED on a To: of
    30 ``<!--`` took 56 s, and the rules layer can interrupt no search. A written-out check of
    which nestings are ambiguous is not made: every such pattern counts."""
    return some(items, lambda op, av: _unbounded_repeat(op, av) and some(av[2], _unbounded_repeat))


def long_value_search(p: PerlPattern, search: Callable[..., Any]) -> Callable[[str], Any]:
    """A header or mimeheader rule's ``search(value)`` (a match or None: only whether there is
    one is read), with the same answers in time linear in a long value. Python's backtracking
    ``re`` tries a pattern from every position, and from each ``name=`` in a value a pattern
    such as ``name=.*?(?:prize|urgent)`` or ``\\bname="?[^"]*\\.zip`` runs on to the end of the
    line before it fails: a value of many ``name=`` took time square in its length (a
    100 KB Content-Type header: 57 s of CPU in the rules layer;
    tests/unit/antispam/test_fuzz_regressions.py). Below LONG_VALUE characters ``search``
    answers as before; a longer value is asked of RE2 (linear in the text) when RE2 takes the
    pattern exactly. A pattern RE2 takes only as a superset (look-around, back-references) keeps
    ``re`` alone: on ordinary mail the superset lets most long values through to ``re`` anyway,
    after RE2's own pass (the back-reference rules over ALL: 0.7 ms a message more on corpus
    mail); SpamAssassin's cut of a field at 8,192 octets bounds those (saview.build_view). The
    RE2 form is built on the first long value (most rules never see one). A pattern with nested
    repeats (nested_repeats) that RE2 takes exactly is asked of RE2 whatever the value's length:
    a short value can be enough for ``re`` to backtrack without end."""
    if re2 is None or not isinstance(p.compiled, re.Pattern):
        return search
    built: list[Prefilter | None] = []
    shortest: list[int] = []  # the shortest value RE2 is asked about, found on the first call

    def bounded(text: str) -> Any:
        if not shortest:
            tree = parse_tree(p) if "+" in p.source or "*" in p.source or "," in p.source else None
            shortest.append(0 if tree is not None and nested_repeats(tree) else LONG_VALUE)
        if len(text) < shortest[0]:
            return search(text)
        if not built:
            pf = prefilter(p)
            built.append(pf if pf is not None and pf.exact else None)
        pf = built[0]
        verdict = pf.may_match(text) if pf is not None else None
        if verdict is None:  # no exact RE2 form, or RE2 could not read the text
            return search(text)
        return True if verdict else None
    return bounded


# -- local rules: never super-linear ---------------------------------------------------------------
SUPER_LINEAR = "a repeat inside a repeat can take exponential time: rewrite it or write it for RE2"
# a group repeated by an unbounded quantifier, in a source the standard library cannot parse
_QUANTIFIED_GROUP = re.compile(r"\)(?:[*+]|\{\d*,\d*\})")


CHOICE_ROUNDS = 8  # rounds of an alternation under a bounded repeat left to ``re``: 2^8 cuts at most


def _repeat_of_choices(op: Any, av: Any) -> bool:
    """A repeat that can go round more than once over a body holding an unbounded repeat, or
    more than CHOICE_ROUNDS times over one holding an alternation: each round can end in several
    places, and Python's ``re`` tries every way of cutting a text that does not match
    (``(a|aa)+$`` on 60 a's and a b: 2^60 ways)."""
    return op in _REPEATS and ((av[1] > 1 and some(av[2], _unbounded_repeat))
                               or (av[1] > CHOICE_ROUNDS and some(av[2], lambda o, a: o is C.BRANCH)))


POLYNOMIAL = ("repeats of overlapping characters side by side can take time of a high power of the "
              "text's length: rewrite it or write it for RE2")
CHAIN_LIMIT = 3  # adjacent overlapping repeats: 2 is the square of a line's length (as in Perl), 3 its cube


def _chars(test: Callable[[str], bool]) -> frozenset[int]:
    return frozenset(i for i in range(256) if test(chr(i)))


def _is_space(c: str) -> bool:
    return c in " \t\n\r\f\v"


def _is_word(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _is_digit(c: str) -> bool:
    return c.isascii() and c.isdigit()


_SPACES, _WORDS, _DIGITS = _chars(_is_space), _chars(_is_word), _chars(_is_digit)
_ALL = frozenset(range(256))
_NONE: frozenset[int] = frozenset()
# the characters (of the first 256) of each class of an ASCII pattern
_CATEGORY_CHARS: dict[Any, frozenset[int]] = {
    C.CATEGORY_DIGIT: _DIGITS, C.CATEGORY_NOT_DIGIT: _ALL - _DIGITS, C.CATEGORY_SPACE: _SPACES,
    C.CATEGORY_NOT_SPACE: _ALL - _SPACES, C.CATEGORY_WORD: _WORDS, C.CATEGORY_NOT_WORD: _ALL - _WORDS}


def _char_set(items: Any) -> frozenset[int] | None:
    """The characters (of the first 256, both cases) a repeat's body of one character matches:
    a literal, a class, ``.``; None for a longer body."""
    if len(items) != 1:
        return None
    op, av = items[0]
    if op is C.LITERAL:
        got = {av}
    elif op is C.NOT_LITERAL:
        got = set(range(256)) - {av}
    elif op is C.ANY:
        got = set(range(256)) - {10}
    elif op is C.IN:
        got = set()
        negate = False
        for o, a in av:
            if o is C.NEGATE:
                negate = True
            elif o is C.LITERAL:
                got.add(a)
            elif o is C.RANGE:
                got.update(range(a[0], min(a[1], 255) + 1))
            elif o is C.CATEGORY:
                cat = _CATEGORY_CHARS.get(a)
                if cat is None:
                    return None
                got.update(cat)
            else:
                return None
        if negate:
            got = set(range(256)) - got
    else:
        return None
    return frozenset(got | {ord(chr(c).swapcase()) for c in got if chr(c).isascii() and chr(c).isalpha()})


def _may_be_empty(items: Any) -> bool:
    """Whether these items can match the empty text (assertions, optional repeats, groups and
    alternatives of such)."""
    for op, av in items:
        if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
            continue
        if op in _REPEATS and (av[0] == 0 or _may_be_empty(av[2])):
            continue
        if op is C.SUBPATTERN and _may_be_empty(av[3]):
            continue
        if op is C.BRANCH and any(_may_be_empty(alt) for alt in av[1]):
            continue
        return False
    return True


def _high_power(items: Any) -> bool:
    r"""Whether a sequence (at any depth) holds CHAIN_LIMIT unbounded repeats of overlapping
    characters with only what may be empty between them (``\w+\s*\w+\s*\w+``: Python's
    ``re`` tries every way of sharing a run of word characters among them, from every start,
    the cube of the run's length and more; 400 characters took 124 s), or a bounded repeat of
    more than CHOICE_ROUNDS rounds over a body that may be empty (``(?:x?){30}``: each round
    matches or not, 2^30 ways)."""
    chain = 0
    last: frozenset[int] = frozenset()
    for op, av in items:
        if op in _REPEATS and av[1] > CHOICE_ROUNDS and av[1] != C.MAXREPEAT and _may_be_empty(av[2]):
            return True
        cs = _char_set(av[2]) if op in _REPEATS and av[1] == C.MAXREPEAT else None
        if cs is not None and chain and cs & last:
            chain, last = chain + 1, cs
        elif cs is not None and av[0] > 0:
            chain, last = 1, cs
        elif cs is not None or _may_be_empty([(op, av)]):
            pass  # (an optional repeat of other characters, an assertion: the chain goes on)
        else:
            chain, last = 0, _NONE
        if chain >= CHAIN_LIMIT:
            return True
    return any(_high_power(c) for op, av in items for c in _children(op, av))


class LinearPattern:
    """A local rule's expression run by RE2, in time linear in the text, with the methods of a
    compiled ``re`` pattern the engine calls. The RE2 expression matches exactly where the
    Python one does (_Emitter's exact); for a rule counted by a single match (``tails``) a
    look-ahead or Python's ``$`` at its very end is consumed, so a match may end a character
    later (a final newline), never elsewhere. Capture groups are not kept: rules that capture
    are not given one."""

    __slots__ = ("_rx", "flags", "pattern", "groupindex", "expression")

    def __init__(self, rx: Any, flags: int, pattern: str, expression: str) -> None:
        self._rx = rx
        self.flags = flags
        self.pattern = pattern
        self.groupindex: dict[str, int] = {}
        self.expression = expression

    def search(self, text: str, pos: int = 0) -> Any:
        try:
            return self._rx.search(text, pos)
        except UnicodeEncodeError:  # lone surrogates (RE2 reads UTF-8): each one read as "?"
            return self._rx.search(text.encode("utf-8", "replace").decode("utf-8"), pos)

    def match(self, text: str, pos: int = 0) -> Any:
        try:
            return self._rx.match(text, pos)
        except UnicodeEncodeError:
            return self._rx.match(text.encode("utf-8", "replace").decode("utf-8"), pos)

    def finditer(self, text: str, pos: int = 0) -> Any:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
        return self._rx.finditer(text, pos)


def linear_pattern(p: PerlPattern, counts: bool) -> PerlPattern | str | None:
    """A local rule's expression made safe to run: None when it cannot run super-linear (it
    stays as it is: the hot path unchanged), the same expression run by RE2 when it could
    (_repeat_of_choices) and RE2 takes it exactly, else the reason the rule cannot run.
    ``counts``: the rule counts its matches (their spans must be Python's exactly). Debian's
    rules are not asked: they are vetted, and measured on corpus mail."""
    flags = p.compiled.flags if isinstance(p.compiled, re.Pattern) else (
        re.ASCII | (re.I if "i" in p.flags else 0) | (re.M if "m" in p.flags else 0)
        | (re.S if "s" in p.flags else 0) | (re.X if "x" in p.flags else 0))
    try:
        tree = P.parse(p.source, flags & (re.ASCII | re.I | re.X))
    except Exception:  # noqa: BLE001 - regex-module-only syntax (a variable-width look-behind)
        return SUPER_LINEAR + " (not checked: the expression is not read)" if _QUANTIFIED_GROUP.search(p.source) else None
    if some(tree, _repeat_of_choices):
        why = SUPER_LINEAR
    elif _high_power(tree):
        why = POLYNOMIAL
    else:
        return None
    if re2 is None or not isinstance(p.compiled, re.Pattern) or p.compiled.groupindex:
        return why
    got = _expression(tree, flags, None, tails=not counts)
    if got is None or not got[1]:
        return why + " (RE2 cannot take it exactly: look-around or a back-reference)"
    try:
        rx = _compile(got[0])
    except re2.error:
        return why + " (RE2 refuses it)"
    return PerlPattern(p.source, p.flags, LinearPattern(rx, flags, p.source, got[0]))
