"""Multi-pattern matching with a literal prefilter, then the regular expression to confirm.

For every pattern we extract, from its parse tree, a set of literal strings one of which MUST
occur in any text the pattern matches (the "necessary factors", as SpamAssassin's own
Rule2XSBody prefilter does). Per message the text is lower-cased once and each rule is skipped
unless one of its factors occurs (a substring test in C); only the survivors run their regular
expression. Patterns without a usable factor always run.

Hyperscan in prefilter mode was measured first (docs/decisions/0041-rule-matching.md): its
compile time for SpamAssassin's body rules exceeded ten minutes here, so it is not used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from gateway_milter.antispam.perlre import PerlPattern

import importlib

# The stdlib's own regular-expression parser (re._parser since 3.11, sre_parse before): its
# parse tree is what we walk for literals. Private API, hence the dynamic import.
C: Any = importlib.import_module("re._constants")
P: Any = importlib.import_module("re._parser")

MIN_FACTOR = 3  # shorter factors filter too little to be worth a test
MAX_ALTERNATIVES = 300  # a long alternation still beats running an expensive pattern


def _lit(items: Any) -> list[set[str] | None]:
    """Walk a parsed sequence; return for each position a required literal set or None."""
    out: list[set[str] | None] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            out.append({"".join(run)})
            run.clear()

    for op, av in items:
        if op is C.LITERAL:
            run.append(chr(av).lower())
            continue
        if op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)) and av[0] >= 1 \
                and len(av[2]) == 1 and av[2][0][0] is C.LITERAL:
            # "ad+res": the first 'd' ends the run "ad", the last 'd' starts the run "dres"
            ch = chr(av[2][0][1]).lower()
            run.append(ch)
            flush()
            run.append(ch)
            continue
        flush()
        if op is C.SUBPATTERN:
            sub = av[-1]
            out.append(_best(_lit(sub)))
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, getattr(C, "POSSESSIVE_REPEAT", None)):
            lo, _hi, sub = av
            if lo >= 1:
                out.append(_best(_lit(sub)))
        elif op is C.BRANCH:
            alts: set[str] = set()
            for b in av[1]:
                best = _best(_lit(b))
                if best is None:
                    alts = set()
                    break
                alts |= best
            out.append(alts or None)
        elif op is getattr(C, "ATOMIC_GROUP", None):
            out.append(_best(_lit(av)))
        elif op is C.IN:
            # a one-letter class such as [Vv] is a literal when lower-cased
            lits = {chr(a).lower() for o, a in av if o is C.LITERAL}
            if len(lits) == 1 and all(o is C.LITERAL for o, _ in av):
                run.append(lits.pop())
                continue
            out.append(None)
        else:
            out.append(None)
    flush()
    return out


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


def required_factors(p: PerlPattern) -> tuple[str, ...] | None:
    """Literal strings (lower-case) one of which occurs in every match, or None."""
    if p.flags and "x" in p.flags:
        return None
    try:
        tree = P.parse(p.source, re.ASCII | (re.I if "i" in p.flags else 0))
    except Exception:  # noqa: BLE001 - regex-module-only syntax: no prefilter
        return None
    best = _best(_lit(tree))
    if not best or min(len(x) for x in best) < MIN_FACTOR or len(best) > MAX_ALTERNATIVES:
        return None
    return tuple(sorted(best))


class MultiMatcher:
    def __init__(self, patterns: Sequence[PerlPattern]) -> None:
        self.patterns = list(patterns)
        self.factors = [required_factors(p) for p in self.patterns]
        self.always = [i for i, f in enumerate(self.factors) if f is None]
        self.filtered = [(i, f) for i, f in enumerate(self.factors) if f is not None]

    def candidates(self, text: str) -> list[int]:
        """Indexes of patterns that may match ``text``; never misses a match."""
        if not self.patterns or not text:
            return []
        low = text.lower()
        out = [i for i, fs in self.filtered if any(f in low for f in fs)]
        out.extend(self.always)
        return out

    @property
    def prefiltered_count(self) -> int:
        return len(self.filtered)
