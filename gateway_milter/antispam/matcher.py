"""Multi-pattern matching with a literal prefilter, then the regular expression to confirm.

For every pattern we extract, from its parse tree, a set of literal strings one of which MUST
occur in any text the pattern matches (the "necessary factors", as SpamAssassin's own
Rule2XSBody prefilter does). Per message the text is lower-cased once, one Aho-Corasick pass
finds which factors occur, and a rule is skipped unless one of its factors does; only the
survivors run their regular expression. Patterns without a usable factor always run. A second kind of factor lives in the
"squeezed" text (letters and digits only), for patterns that tolerate punctuation between
letters.

Hyperscan in prefilter mode was measured first (docs/decisions/0041-rule-matching.md): its
compile time for SpamAssassin's body rules exceeded ten minutes here, so it is not used.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import ahocorasick

from gateway_milter.antispam.perlre import PerlPattern
from gateway_milter.antispam.possessive import in_class

import importlib

# The stdlib's own regular-expression parser (re._parser since 3.11, sre_parse before): its
# parse tree is what we walk for literals. Private API, hence the dynamic import.
C: Any = importlib.import_module("re._constants")
P: Any = importlib.import_module("re._parser")

K = TypeVar("K", bound=Hashable)
MIN_FACTOR = 3  # shorter factors filter too little to be worth a test
MAX_ALTERNATIVES = 300  # a long alternation still beats running an expensive pattern
_REPEATS = tuple(x for x in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)) if x is not None)
_ZERO_WIDTH = (C.AT, C.ASSERT, C.ASSERT_NOT)  # \b, ^, $, look-around: consume nothing
_ALNUM = frozenset(map(ord, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
# Texts for the "squeezed" factors: everything but ASCII letters and digits removed, then lower-cased.
SQUEEZE = re.compile(r"[^A-Za-z0-9]+")


def squeeze(text: str) -> str:
    """The text as the squeezed factors see it: ``"V_i-A g.r a"`` -> ``"viagra"``.
    Characters are removed before lower-casing, so no non-ASCII character can turn into an
    ASCII letter (the Kelvin sign lower-cases to ``k``)."""
    return SQUEEZE.sub("", text).lower()


def _class_is_squeezed_away(items: Any, icase: bool) -> bool:
    """True when the class can match no ASCII letter or digit (so squeeze() removes whatever it
    matches). Case-insensitive matching folds ASCII letters only (patterns compile with re.ASCII)."""
    for ch in _ALNUM:
        for c in {ch, ord(chr(ch).swapcase())} if icase else {ch}:
            if in_class(items, c) is not False:
                return False
    return True


class _Walker:
    r"""Walks a parse tree for literal runs every match must contain.

    ``squeezed=False``: runs of the text itself (lower-cased). ``squeezed=True``: runs of the
    squeezed text, where pattern items that can only match characters other than ASCII letters
    and digits (``[_\W]{0,3}``, ``\s``, ``-``) are transparent: SpamAssassin's obfuscation-
    tolerant patterns (``v[_\W]{0,3}i[_\W]{0,3}a...``) then yield "via...". Zero-width items
    (``\b``, ``^``, look-around) never interrupt a run in either mode."""

    def __init__(self, squeezed: bool, icase: bool) -> None:
        self.squeezed = squeezed
        self.icase = icase

    def transparent(self, op: Any, av: Any) -> bool:
        if op in _ZERO_WIDTH:
            return True
        if not self.squeezed:
            return False
        if op is C.LITERAL:
            return av not in _ALNUM and not (self.icase and ord(chr(av).swapcase()) in _ALNUM)
        if op is C.IN:
            return _class_is_squeezed_away(av, self.icase)
        if op in _REPEATS:
            return all(self.transparent(o, a) for o, a in av[2])
        if op is C.SUBPATTERN:
            return all(self.transparent(o, a) for o, a in av[-1])
        if op is C.BRANCH:
            return all(all(self.transparent(o, a) for o, a in b) for b in av[1])
        return False

    def walk(self, items: Any) -> list[set[str] | None]:
        """For each position a required literal set or None."""
        out: list[set[str] | None] = []
        run: list[str] = []
        self._walk(items, out, run)
        if run:
            out.append({"".join(run)})
        return out

    def _walk(self, items: Any, out: list[set[str] | None], run: list[str]) -> None:
        def flush() -> None:
            if run:
                out.append({"".join(run)})
                run.clear()

        for op, av in items:
            if self.transparent(op, av):
                continue
            if op is C.LITERAL:
                run.append(chr(av).lower())
                continue
            if op in _REPEATS and av[0] >= 1 and len(av[2]) == 1 and av[2][0][0] is C.LITERAL:
                # "ad+res": the first 'd' ends the run "ad", the last 'd' starts the run "dres"
                ch = chr(av[2][0][1]).lower()
                run.append(ch)
                flush()
                run.append(ch)
                continue
            if op is C.IN:
                # a one-letter class such as [Vv] is a literal when lower-cased
                lits = {chr(a).lower() for o, a in av if o is C.LITERAL}
                if len(lits) == 1 and all(o is C.LITERAL for o, _ in av):
                    run.append(lits.pop())
                    continue
            if op in (C.SUBPATTERN, getattr(C, "ATOMIC_GROUP", None)):
                # a group matches a contiguous piece of the text: its runs join the outer ones
                self._walk(av[-1] if op is C.SUBPATTERN else av, out, run)
                continue
            flush()
            if op in _REPEATS:
                lo, _hi, sub = av
                if lo >= 1:
                    out.append(_best(self.walk(sub)))
            elif op is C.BRANCH:
                alts: set[str] = set()
                for b in av[1]:
                    best = _best(self.walk(b))
                    if best is None:
                        alts = set()
                        break
                    alts |= best
                out.append(alts or None)
            else:
                out.append(None)


def _lit(items: Any) -> list[set[str] | None]:
    return _Walker(False, False).walk(items)


def _best(parts: list[set[str] | None]) -> set[str] | None:
    """The most selective required set: longest shortest-member, few alternatives."""
    best: set[str] | None = None
    best_key = (0, 0)
    for s in parts:
        if not s:
            continue
        key = (min(len(x) for x in s), -len(s))
        if key > best_key:
            best, best_key = s, key
    return best


def parse_tree(p: PerlPattern) -> Any:
    """The standard library's parse tree of ``p``, or None where no prefilter can be derived
    from it (extended syntax, regex-module-only constructs). Callers only read it: inside
    :class:`shared_trees` one tree serves every caller."""
    if p.flags and "x" in p.flags:
        return None
    key = (p.source, p.flags)
    sharing = _tree_users > 0
    if sharing:
        got = _trees.get(key, _NO_TREE)
        if got is not _NO_TREE:
            return got
    try:
        tree = P.parse(p.source, re.ASCII | (re.I if "i" in p.flags else 0))
    except Exception:  # noqa: BLE001 - regex-module-only syntax: no prefilter
        tree = None
    if sharing:
        _trees[key] = tree
    return tree


_NO_TREE = object()
_trees: dict[tuple[str, str], Any] = {}
_tree_users = 0
_tree_lock = threading.Lock()


class shared_trees:  # (a context manager, named as one)
    """While a rule set is compiled (RuleEngine's constructor), each pattern is parsed once:
    its prefilters (literal factors, squeezed factors, position and relaxed patterns, RE2's
    expression, the look-ahead lead) each asked the parser again. For Debian's set that was
    2,298 parses of 682 patterns. The trees go when the last build running ends."""

    def __enter__(self) -> None:
        global _tree_users
        with _tree_lock:
            _tree_users += 1

    def __exit__(self, *exc: object) -> None:
        global _tree_users
        with _tree_lock:
            _tree_users -= 1
            if _tree_users == 0:
                _trees.clear()


def _factors(p: PerlPattern, squeezed: bool) -> tuple[str, ...] | None:
    if squeezed and not isinstance(p.compiled, re.Pattern):
        return None  # the regex module folds case its own way: plain factors only
    tree = parse_tree(p)
    if tree is None:
        return None
    icase = "i" in p.flags
    if squeezed and (tree.state.flags & re.I):
        icase = True  # (?i) at the start of the pattern
    best = _best(_Walker(squeezed, icase).walk(tree))
    if not best or min(len(x) for x in best) < MIN_FACTOR or len(best) > MAX_ALTERNATIVES:
        return None
    return tuple(sorted(best))


def required_factors(p: PerlPattern) -> tuple[str, ...] | None:
    """Literal strings (lower-case) one of which occurs in every match, or None."""
    return _factors(p, False)


def required_squeezed_factors(p: PerlPattern) -> tuple[str, ...] | None:
    """Strings one of which occurs in ``squeeze(text)`` whenever the pattern matches ``text``,
    or None."""
    return _factors(p, True)


class FactorIndex(Generic[K]):
    """The factors of many rules in one Aho-Corasick automaton (pyahocorasick, C): one pass
    over a text gives every rule one of whose factors occurs in it, instead of one substring
    test per factor and rule (docs/decisions/0044-factor-prefilter-aho-corasick.md)."""

    def __init__(self, factors: Mapping[K, Sequence[str]]) -> None:
        by_factor: dict[str, set[K]] = {}
        for key, fs in factors.items():
            for f in fs:
                by_factor.setdefault(f, set()).add(key)
        self.groups: list[frozenset[K]] = []
        self.automaton: Any = None
        if by_factor:
            self.automaton = ahocorasick.Automaton()
            for f, keys in by_factor.items():
                self.automaton.add_word(f, len(self.groups))
                self.groups.append(frozenset(keys))
            self.automaton.make_automaton()

    def present(self, text: str) -> set[K]:
        """Keys with a factor in ``text`` (already lower-cased or squeezed by the caller)."""
        if self.automaton is None or not text:
            return set()
        found = {i for _end, i in self.automaton.iter(text)}
        groups = self.groups
        return set().union(*(groups[i] for i in found))


class MultiMatcher:
    """Candidate patterns for one text: those with a factor in it, and those without factors."""

    def __init__(self, patterns: Sequence[PerlPattern]) -> None:
        self.patterns = list(patterns)
        self.factors = [required_factors(p) for p in self.patterns]
        self.always = [i for i, f in enumerate(self.factors) if f is None]
        self.index = FactorIndex({i: f for i, f in enumerate(self.factors) if f is not None})

    def candidates(self, text: str) -> list[int]:
        """Indexes of patterns that may match ``text``; never misses a match."""
        if not self.patterns:
            return []
        return sorted(self.index.present(text.lower()).union(self.always))

    @property
    def prefiltered_count(self) -> int:
        return len(self.patterns) - len(self.always)


_MAX_CLASS_RANGE = 512  # a wider range (\x{100}-\x{FFFF}) makes the character set useless


def _chars(items: Any, icase: bool) -> set[int] | None:
    """Every character a match of ``items`` can consume (None: too many to list). Zero-width
    items (look-around, anchors) consume nothing."""
    out: set[int] = set()

    def add(c: int) -> None:
        out.add(c)
        if icase and c < 128:
            out.add(ord(chr(c).swapcase()))

    for op, av in items:
        if op in _ZERO_WIDTH:
            continue
        if op is C.LITERAL:
            add(av)
        elif op is C.IN:
            for o, a in av:
                if o is C.LITERAL:
                    add(a)
                elif o is C.RANGE and a[1] - a[0] <= _MAX_CLASS_RANGE:
                    for c in range(a[0], a[1] + 1):
                        add(c)
                elif o is C.CATEGORY and a is C.CATEGORY_DIGIT:
                    out.update(range(48, 58))
                elif o is C.CATEGORY and a is C.CATEGORY_SPACE:
                    out.update(map(ord, " \t\n\r\x0b\x0c"))
                elif o is C.CATEGORY and a is C.CATEGORY_WORD:
                    out.update(_ALNUM | {ord("_")})
                else:
                    return None  # negated class, \W, \S, \D
        elif op in _REPEATS:
            sub = _chars(av[2], icase)
            if sub is None:
                return None
            out |= sub
        elif op is C.SUBPATTERN:
            _group, add_flags, del_flags, p = av
            inner = (icase or bool(add_flags & re.I)) and not del_flags & re.I
            sub = _chars(p, inner)
            if sub is None:
                return None
            out |= sub
        elif op is C.BRANCH:
            for b in av[1]:
                sub = _chars(b, icase)
                if sub is None:
                    return None
                out |= sub
        else:
            return None  # ., backreferences, conditionals
    return out


_TEXT_CHARS = frozenset(range(32, 127)) | frozenset(map(ord, "\t\n\r"))
MIN_RELAXED_SCORE = 2.0


def _selectivity(chars: frozenset[int]) -> float:
    """How much a character class filters ordinary text: 1 for a single character, 0 for a
    class of 40 or more of the printable ASCII characters (non-ASCII ones are rare in text)."""
    return max(0.0, 1.0 - len(chars & _TEXT_CHARS) / 40)


_MAX_GAP = 8  # an item of any characters but at most this many stays in a relaxed pattern
_MAX_SET = 300
# Worst-case ways a relaxed pattern can split a text among its pieces at one position (product
# of the choices of consecutive pieces whose characters overlap): bounds its backtracking.
MAX_BRANCH = 16


def relaxed_pattern(p: PerlPattern) -> re.Pattern[str] | None:
    r"""A cheap pattern that matches wherever ``p`` can, for a prefilter: ``p``'s top-level
    sequence with every item replaced by "a run of the characters it can consume, as long as
    it can be" (``(?:[vV]|\\\/)`` -> ``[/Vv\\]{1,2}``), zero-width items dropped, items of any
    character but bounded width kept as ``[\s\S]{lo,hi}``; the longest stretch that needs at
    least three specific characters. A match of ``p`` is a run of consecutive item matches, so
    a text where this pattern finds nothing cannot match ``p``. The relaxed pattern starts with
    a character class, which lets ``re`` skip ahead in C (``p`` often starts with a look-ahead
    or an alternation and gets no such help): SpamAssassin's FUZZY_* rules (each letter an
    alternation of look-alikes) have no literal factor but relax well."""
    tree = parse_tree(p) if isinstance(p.compiled, re.Pattern) else None
    if tree is None:
        return None
    icase = "i" in p.flags or bool(tree.state.flags & re.I)
    items: list[tuple[Any, Any]] = []

    def flatten(seq: Any) -> None:
        for op, av in seq:
            if op is C.SUBPATTERN and not av[1] and not av[2]:
                flatten(av[3])  # a plain group: its items are part of the sequence
            else:
                items.append((op, av))

    flatten(tree)
    # pieces: (character class source or "" for any character, min, max); None breaks a stretch
    # pieces: (characters or None for "any", min, max); None breaks a stretch
    pieces: list[tuple[frozenset[int] | None, int, int] | None] = []
    for op, av in items:
        if op in _ZERO_WIDTH:
            continue
        lo, hi = P.SubPattern(tree.state, [(op, av)]).getwidth()
        chars = _chars([(op, av)], icase)
        if chars is not None and len(chars) <= _MAX_SET:
            pieces.append((frozenset(chars), lo, hi))
        elif hi <= _MAX_GAP:
            pieces.append((None, lo, hi))
        else:
            pieces.append(None)
    stretches: list[list[tuple[frozenset[int] | None, int, int]]] = [[]]
    for piece in pieces:
        if piece is None:
            stretches.append([])
        elif piece[2] >= C.MAXREPEAT - 1:
            # a run of at least lo characters: its last lo may start a stretch and its first lo
            # end one; an unbounded repeat inside the relaxed pattern could backtrack badly
            stretches[-1].append((piece[0], piece[1], piece[1]))
            stretches.append([(piece[0], piece[1], piece[1])])
        elif piece[2] > 0:
            stretches[-1].append(piece)
    best: list[tuple[frozenset[int] | None, int, int]] = []
    best_score = 0.0
    for st in stretches:
        for a in range(len(st)):
            first = st[a][0]
            if first is None or st[a][1] == 0 or _selectivity(first) < 0.25:
                continue  # a window starts and ends with a selective, non-optional piece
            branch = 1
            for b in range(a, len(st)):
                if b > a:
                    prev, cur = st[b - 1], st[b]
                    if prev[0] is None or cur[0] is None or prev[0] & cur[0]:
                        branch *= prev[2] - prev[1] + 1
                if branch > MAX_BRANCH:
                    break
                end = st[b][0]
                if end is None or st[b][1] == 0 or _selectivity(end) < 0.25:
                    continue
                window = st[a:b + 1]
                score = sum(lo * _selectivity(cs) for cs, lo, _hi in window if cs is not None)
                if score > best_score:
                    best, best_score = window, score
    if best_score < MIN_RELAXED_SCORE:
        return None
    out = []
    last = len(best) - 1
    for n, (cs, lo, hi) in enumerate(best):
        c = "[" + "".join(re.escape(chr(x)) for x in sorted(cs)) + "]" if cs is not None else r"[\s\S]"
        if n == last:
            hi = lo  # nothing follows: its first lo characters are enough
        if n == 0:  # one plain class first: re then scans for it in C
            lo, hi = lo - 1, hi - 1
            out.append(c)
            if hi <= 0:
                continue
        out.append(f"{c}{{{lo},{hi}}}")
    try:
        return re.compile("".join(out))
    except (re.error, RecursionError, OverflowError):
        return None


# Per position: the characters possible there (None: any). Negative members stand for the
# categories \W, \S, \D (ASCII meaning, as the rules compile), which cannot be listed.
_Sets = list[frozenset[int] | None]
_CATEGORIES = {-1: "\\W", -2: "\\S", -3: "\\D"}
_CATEGORY_CODES = {"CATEGORY_NOT_WORD": -1, "CATEGORY_NOT_SPACE": -2, "CATEGORY_NOT_DIGIT": -3}
# how many ASCII letters' worth of ordinary text each category matches, for selectivity (\W
# is mostly spaces and punctuation)
_CATEGORY_TEXT = {-1: 8, -2: 95, -3: 88}


def _class_with_categories(items: Any, icase: bool) -> frozenset[int] | None:
    """A class of literals, ranges and negated categories (``[\\W_]``) as characters plus
    category codes; None for a negated class."""
    out: set[int] = set()
    for op, av in items:
        if op is C.CATEGORY and str(av) in _CATEGORY_CODES:
            out.add(_CATEGORY_CODES[str(av)])
            continue
        chars = _chars([(C.IN, [(op, av)])], icase)
        if chars is None:
            return None
        out |= chars
    return frozenset(out)


def _position_selectivity(chars: frozenset[int]) -> float:
    n = len({c for c in chars if c >= 0} & _TEXT_CHARS) + sum(_CATEGORY_TEXT[c] for c in chars if c < 0)
    return max(0.0, 1.0 - n / 40)
_BIG = 1 << 30


def _seq_sets(parts: list[tuple[_Sets, int, int]], k: int) -> tuple[_Sets, int, int]:
    """Position sets of a concatenation: part i starts anywhere between the shortest and the
    longest length of the parts before it."""
    out: list[set[int] | None] = [set() for _ in range(k)]
    lo = hi = 0
    for sets, plo, phi in parts:
        for off in range(lo, min(hi, k - 1) + 1):
            for j in range(k - off):
                s = sets[j]
                cur = out[off + j]
                if cur is None:
                    continue
                if s is None:
                    out[off + j] = None
                else:
                    cur |= s
        lo, hi = min(lo + plo, _BIG), min(hi + phi, _BIG)
        if lo >= k:
            break
    return [None if s is None else frozenset(s) for s in out], lo, hi


def _item_sets(op: Any, av: Any, icase: bool, k: int) -> tuple[_Sets, int, int] | None:
    empty: _Sets = [frozenset()] * k
    if op in _ZERO_WIDTH:
        return empty, 0, 0
    if op in (C.LITERAL, C.IN):
        chars = _chars([(op, av)], icase)
        got = frozenset(chars) if chars is not None else _class_with_categories(av, icase) if op is C.IN else None
        return [got] + empty[1:], 1, 1
    if op in (C.ANY, C.NOT_LITERAL):
        return [None] + empty[1:], 1, 1
    if op is C.SUBPATTERN:
        _group, add_flags, del_flags, sub = av
        return _items_sets(sub, (icase or bool(add_flags & re.I)) and not del_flags & re.I, k)
    if op is C.BRANCH:
        alts = [_items_sets(b, icase, k) for b in av[1]]
        if any(a is None for a in alts):
            return None
        merged: list[frozenset[int] | None] = []
        for j in range(k):
            col = [a[0][j] for a in alts if a is not None]
            merged.append(None if any(c is None for c in col) else frozenset().union(*col))  # type: ignore[arg-type]
        return merged, min(a[1] for a in alts if a), max(a[2] for a in alts if a)
    if op in _REPEATS:
        rlo, rhi, sub = av
        one = _items_sets(sub, icase, k)
        if one is None:
            return None
        optional = (one[0], 0, one[2])
        n_opt = min(rhi, k + 1) - rlo if rhi < C.MAXREPEAT else k + 1
        parts = [one] * min(rlo, k + 1) + [optional] * max(0, n_opt)
        sets, lo, hi = _seq_sets(parts, k)
        return sets, min(one[1] * rlo, _BIG), _BIG if rhi >= C.MAXREPEAT else min(one[2] * rhi, _BIG)
    return None  # back-references, conditionals, ...


def _items_sets(items: Any, icase: bool, k: int) -> tuple[_Sets, int, int] | None:
    parts = []
    for op, av in items:
        s = _item_sets(op, av, icase, k)
        if s is None:
            return None
        parts.append(s)
    return _seq_sets(parts, k)


def position_pattern(p: PerlPattern, k: int = 6) -> re.Pattern[str] | None:
    """A fixed-width pattern for a prefilter: the characters that can stand at each of the
    first ``k`` positions of a match of ``p`` (``[Pp\\xfe&][Hh#&\\x80-\\xbf][Aa4@...]``).
    A text where it finds nothing cannot match ``p``; being fixed-width it never backtracks."""
    tree = parse_tree(p) if isinstance(p.compiled, re.Pattern) else None
    if tree is None:
        return None
    got = _items_sets(tree, "i" in p.flags or bool(tree.state.flags & re.I), k)
    if got is None:
        return None
    sets, lo, _hi = got
    sets = sets[:min(lo, k)]
    while sets and sets[0] is None:
        sets.pop(0)
    while sets and sets[-1] is None:
        sets.pop()
    specific = [s for s in sets if s is not None]
    if len(specific) < MIN_FACTOR or any(len(s) > _MAX_SET for s in specific) or any(not s for s in specific) \
            or _position_selectivity(sets[0]) < 0.25:  # type: ignore[arg-type]
        return None
    return re.compile("".join(r"[\s\S]" if s is None else "[" + "".join(
        _CATEGORIES[c] if c < 0 else re.escape(chr(c)) for c in sorted(s)) + "]" for s in sets), re.ASCII)


def _literal_strings(items: Any, icase: bool, cap: int) -> list[str] | None:
    """Every string a sequence of parse-tree items matches, when they are finitely many (at most
    ``cap``): literals, classes of literals and short ranges, alternations and groups; None for
    anything else (repeats, categories, negated classes, anchors, look-around)."""
    outs = [""]
    for op, av in items:
        if op is C.LITERAL:
            alts = _cased(av, icase)
        elif op is C.IN:
            alts = []
            for o, a in av:
                if o is C.LITERAL:
                    alts += _cased(a, icase)
                elif o is C.RANGE and a[1] - a[0] < cap:
                    for c in range(a[0], a[1] + 1):
                        alts += _cased(c, icase)
                else:
                    return None
        elif op is C.BRANCH:
            alts = []
            for branch in av[1]:
                got = _literal_strings(branch, icase, cap)
                if got is None:
                    return None
                alts += got
        elif op is C.SUBPATTERN:
            sub = _literal_strings(av[-1], icase, cap)
            if sub is None:
                return None
            alts = sub
        else:
            return None
        outs = [a + b for a in outs for b in dict.fromkeys(alts)]
        if len(outs) > cap:
            return None
    return outs


def _cased(c: int, icase: bool) -> list[str]:
    ch = chr(c)
    if icase and ch.isascii() and ch.isalpha():  # (the rules' expressions fold ASCII letters only)
        return [ch.lower(), ch.upper()]
    return [ch]


def literal_set(p: PerlPattern, cap: int = 64) -> tuple[str, ...] | None:
    """The strings an expression matches, for one that matches a few fixed strings of which no
    two can overlap (none inside another, no end of one the start of another or of itself):
    ``/e/``, SpamAssassin's ``<lcase_e>`` look-alike letters. Its matches in a text, as
    ``finditer`` finds them, are then the occurrences of each string, and their number is the
    sum of ``str.count`` over the strings, counted in C. None for any other expression."""
    if not isinstance(p.compiled, re.Pattern):
        return None
    icase = bool(p.compiled.flags & re.IGNORECASE)
    if icase and not p.compiled.flags & re.ASCII:
        return None  # (Unicode case folding: "k" is also the Kelvin sign)
    tree = parse_tree(p)
    if tree is None:
        return None
    got = _literal_strings(list(tree), icase, cap)
    if not got or "" in got or len(set(got)) != len(got):
        return None
    for a in got:
        for b in got:
            if a != b and a in b:
                return None
            if any(a.endswith(b[:k]) for k in range(1, min(len(a), len(b)))):
                return None  # an occurrence of b could start inside one of a
    return tuple(got)
