"""Comparators (RFC 4790: i;octet, i;ascii-casemap, i;ascii-numeric; RFC 5051 i;unicode-casemap),
match types (RFC 5228 2.7.1: :is :contains :matches), relational (RFC 5231: :value :count)
and :regex (draft-ietf-sieve-regex), plus match variables (RFC 5229 section 3.2).

Regular expressions run on the ``regex`` module with a time-out, so a pathological pattern
(catastrophic backtracking) raises a run-time error instead of hanging a milter thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import regex  # type: ignore[import-untyped,unused-ignore]

from gateway_milter.sieve.compiler import (
    Args,
    CompileContext,
    ListFn,
    SieveError,
    TagSpec,
)
from gateway_milter.sieve.runtime import Runtime, SieveRuntimeError

Matcher = Callable[[Runtime, list[str]], bool]

RELATIONS = ("gt", "ge", "lt", "le", "eq", "ne")
COMPARATORS = {
    "i;octet": "comparator-i;octet",
    "i;ascii-casemap": "comparator-i;ascii-casemap",
    "i;ascii-numeric": "comparator-i;ascii-numeric",
    "i;unicode-casemap": "comparator-i;unicode-casemap",
}
_ASCII_LOWER = {i: i + 32 for i in range(65, 91)}


def ascii_fold(s: str) -> str:
    return s.lower() if s.isascii() else s.translate(_ASCII_LOWER)


def unicode_fold(s: str) -> str:
    return s.casefold()


def _numeric(s: str) -> int | None:
    """i;ascii-numeric: the leading digits; a string without them is positive infinity."""
    i = 0
    while i < len(s) and "0" <= s[i] <= "9":
        i += 1
    return int(s[:i]) if i else None


def _num_cmp(a: str, b: str) -> int:
    x, y = _numeric(a), _numeric(b)
    if x is None and y is None:
        return 0
    if x is None:
        return 1
    if y is None:
        return -1
    return (x > y) - (x < y)


def _relation(rel: str) -> Callable[[int], bool]:
    return {
        "gt": lambda c: c > 0, "ge": lambda c: c >= 0, "lt": lambda c: c < 0,
        "le": lambda c: c <= 0, "eq": lambda c: c == 0, "ne": lambda c: c != 0,
    }[rel]


def match_tags(cc: CompileContext) -> dict[str, TagSpec]:
    tags = {
        "comparator": TagSpec("comparator", "string"),
        "is": TagSpec("match"),
        "contains": TagSpec("match"),
        "matches": TagSpec("match"),
    }
    if cc.has("relational"):
        tags["value"] = TagSpec("match", "string")
        tags["count"] = TagSpec("match", "string")
    if cc.has("regex"):
        tags["regex"] = TagSpec("match")
    return tags


def address_part_tags(cc: CompileContext) -> dict[str, TagSpec]:
    tags = {"all": TagSpec("addrpart"), "localpart": TagSpec("addrpart"), "domain": TagSpec("addrpart")}
    if cc.has("subaddress"):
        tags["user"] = TagSpec("addrpart")
        tags["detail"] = TagSpec("addrpart")
    return tags


class Glob:
    """A :matches pattern, matched without backtracking (RFC 5228 2.7.1, RFC 5229 3.2).

    The pattern is split at its ``*`` wildcards into segments of fixed length (literals and
    ``?``). The first segment is anchored at the start, the last at the end, and each middle
    segment is placed at its leftmost position: if any match exists this one does, and it gives
    every ``*`` its shortest expansion from the left, as RFC 5229 asks for match variables.
    Cost: one linear search per segment, so ``"*a*a*a*a*b"`` cannot blow up like a
    backtracking regular expression would.
    """

    __slots__ = ("segments", "stars")

    def __init__(self, pattern: str, flags: int) -> None:
        segs: list[list[str]] = [[]]
        i = 0
        while i < len(pattern):
            c = pattern[i]
            if c == "\\" and i + 1 < len(pattern):
                segs[-1].append(re.escape(pattern[i + 1]))
                i += 2
                continue
            if c == "*":
                segs.append([])
            elif c == "?":
                segs[-1].append("(.)")
            else:
                segs[-1].append(re.escape(c))
            i += 1
        self.stars = len(segs) - 1
        self.segments = [(re.compile("".join(p), flags), sum(1 for x in p if x == "(.)") , len(p)) for p in segs]

    def match(self, v: str) -> list[str] | None:
        """The wildcard expansions in pattern order, or None."""
        segs = self.segments
        if not self.stars:
            m = segs[0][0].fullmatch(v)
            return None if m is None else list(m.groups())
        first, last = segs[0], segs[-1]
        m = first[0].match(v)
        if m is None:
            return None
        caps: list[str] = list(m.groups())
        pos = m.end()
        for rx, _, _ in segs[1:-1]:
            m = rx.search(v, pos)
            if m is None:
                return None
            caps.append(v[pos:m.start()])
            caps.extend(m.groups())
            pos = m.end()
        start = len(v) - last[2]
        if start < pos:
            return None
        m = last[0].fullmatch(v, start)
        if m is None:
            return None
        caps.append(v[pos:start])
        caps.extend(m.groups())
        return caps


def compile_matcher(cc: CompileContext, args: Args, keys: ListFn, key_values: list[str] | None,
                    node_line: int, node_col: int, *, numeric_values: bool = False,
                    default_comparator: str = "i;ascii-casemap", capture: bool = True,
                    prefolded: bool = False) -> Matcher:
    """Build the matcher for ``values`` against ``keys`` from the test's tags."""
    comp = args.value("comparator", default_comparator)
    if isinstance(comp, str) and comp not in COMPARATORS:
        cnode = args.tags["comparator"][2]
        raise SieveError(cnode.line, cnode.col, f"unknown comparator \"{comp}\"")
    if comp == "i;ascii-numeric" and not cc.has("comparator-i;ascii-numeric"):
        cnode = args.tags["comparator"][2]
        raise SieveError(cnode.line, cnode.col,
                         "comparator \"i;ascii-numeric\" requires the \"comparator-i;ascii-numeric\" extension")
    mtype = args.tag("match") or "is"
    rel = args.value("match") if mtype in ("value", "count") else None
    if rel is not None:
        if rel.lower() not in RELATIONS:
            mnode = args.tags["match"][2]
            raise SieveError(mnode.line, mnode.col, f"invalid relational match \"{rel}\" (gt, ge, lt, le, eq, ne)")
        rel = rel.lower()
    if comp == "i;ascii-numeric" and mtype in ("contains", "matches", "regex"):
        mnode = args.tags["match"][2]
        raise SieveError(mnode.line, mnode.col, f"comparator i;ascii-numeric does not support :{mtype}")
    fold: Callable[[str], str] | None = {
        "i;octet": None, "i;ascii-casemap": ascii_fold, "i;unicode-casemap": unicode_fold,
        "i;ascii-numeric": None,
    }[comp]
    capture = capture and cc.has("variables")
    if prefolded:
        # The caller passes values already folded by i;ascii-casemap (cached per message).
        if fold is not ascii_fold or mtype not in ("is", "contains") or key_values is None:
            raise ValueError("prefolded matching needs constant keys, :is/:contains and i;ascii-casemap")
        folded_keys = [ascii_fold(k) for k in key_values]
        if mtype == "is":
            kset_f = frozenset(folded_keys)

            def is_pre(rt: Runtime, values: list[str]) -> bool:
                for v in values:  # noqa: SIM110 - hot path: a loop is cheaper than any()/all() on a generator
                    if v in kset_f:
                        return True
                return False

            return is_pre

        def contains_pre(rt: Runtime, values: list[str]) -> bool:
            for v in values:
                for k in folded_keys:
                    if k in v:
                        return True
            return False

        return contains_pre

    if mtype == "count":
        assert rel is not None
        ok = _relation(rel)

        def count(rt: Runtime, values: list[str]) -> bool:
            n = str(len([v for v in values if v is not None]))
            for k in keys(rt):
                c = _num_cmp(n, k) if comp == "i;ascii-numeric" else _str_cmp(n, k, fold)
                if ok(c):
                    return True
            return False

        return count

    if mtype == "value" or (comp == "i;ascii-numeric" and mtype == "is"):
        okr = _relation(rel or "eq")

        def value(rt: Runtime, values: list[str]) -> bool:
            ks = keys(rt)
            for v in values:
                for k in ks:
                    c = _num_cmp(v, k) if comp == "i;ascii-numeric" else _str_cmp(v, k, fold)
                    if okr(c):
                        return True
            return False

        return value

    if mtype == "is":
        if key_values is not None:
            kset = frozenset(fold(k) for k in key_values) if fold else frozenset(key_values)
            if fold is None:
                def is_octet(rt: Runtime, values: list[str]) -> bool:
                    for v in values:  # noqa: SIM110 - hot path: a loop is cheaper than any()/all() on a generator
                        if v in kset:
                            return True
                    return False

                return is_octet
            f = fold

            def is_fold(rt: Runtime, values: list[str]) -> bool:
                for v in values:  # noqa: SIM110 - hot path: a loop is cheaper than any()/all() on a generator
                    if (v.lower() if v.isascii() else f(v)) in kset:
                        return True
                return False

            return is_fold if fold is ascii_fold else (lambda rt, values: any(f(v) in kset for v in values))

        def is_(rt: Runtime, values: list[str]) -> bool:
            ks = keys(rt)
            if fold:
                kf = {fold(k) for k in ks}
                return any(fold(v) in kf for v in values)
            return any(v in ks for v in values)

        return is_

    if mtype == "contains":
        kconst = [fold(k) for k in key_values] if (key_values is not None and fold) else key_values

        def contains(rt: Runtime, values: list[str]) -> bool:
            ks = kconst if kconst is not None else ([fold(k) for k in keys(rt)] if fold else keys(rt))
            for v in values:
                if fold is not None:
                    v = v.lower() if fold is ascii_fold and v.isascii() else fold(v)
                for k in ks:
                    if k in v:
                        return True
            return False

        return contains

    if mtype == "matches":
        flags = re.DOTALL | (re.IGNORECASE if fold else 0)
        if fold is ascii_fold:
            flags |= re.ASCII
        const_globs = [Glob(k, flags) for k in key_values] if key_values is not None else None

        def matches(rt: Runtime, values: list[str]) -> bool:
            globs = const_globs if const_globs is not None else [Glob(k, flags) for k in keys(rt)]
            for v in values:
                for g in globs:
                    caps = g.match(v)
                    if caps is not None:
                        if capture:
                            rt.match = [v, *caps][: rt.limits.max_match_values]
                        return True
            return False

        return matches

    if mtype == "regex":
        rflags = regex.DOTALL | (regex.IGNORECASE if fold else 0)
        if fold is ascii_fold:
            rflags |= regex.ASCII

        def rbuild(k: str, line: int = 0) -> regex.Pattern[str]:
            try:
                return regex.compile(k, rflags)
            except regex.error as e:
                raise SieveError(node_line, node_col, f"invalid regular expression \"{k}\": {e}") from None

        const_rx = [rbuild(k) for k in key_values] if key_values is not None else None

        def rx(rt: Runtime, values: list[str]) -> bool:
            if const_rx is not None:
                pats = const_rx
            else:
                pats = []
                for k in keys(rt):
                    try:
                        pats.append(rbuild(k))
                    except SieveError as e:
                        rt.warnings.append(f"line {rt.line}: {e.message}")
                        continue  # an invalid run-time pattern never matches
            tmo = rt.limits.regex_seconds
            for v in values:
                for p in pats:
                    try:
                        m = p.search(v, timeout=tmo)
                    except TimeoutError:
                        raise SieveRuntimeError("regular expression too expensive (time limit)", rt.line, rt.script) from None
                    if m is not None:
                        if capture:
                            rt.match = [m.group(0), *(g or "" for g in m.groups())][: rt.limits.max_match_values]
                        return True
            return False

        return rx

    raise SieveError(node_line, node_col, f"unsupported match type :{mtype}")


def _str_cmp(a: str, b: str, fold: Callable[[str], str] | None) -> int:
    if fold:
        a, b = fold(a), fold(b)
    return (a > b) - (a < b)


def address_part(part: str) -> Callable[[str, str], str | None]:
    """(address, subaddress delimiters) -> the selected part (RFC 5228 2.7.4, RFC 5233)."""
    def local_domain(a: str) -> tuple[str, str]:
        if "@" in a:
            lp, _, dom = a.rpartition("@")
            return lp, dom
        return a, ""

    def split(lp: str, delims: str) -> tuple[str, str | None]:
        if len(delims) == 1:
            cut = lp.find(delims)
        else:
            cut = min((i for i in (lp.find(d) for d in delims) if i >= 0), default=-1)
        return (lp, None) if cut < 0 else (lp[:cut], lp[cut + 1:])

    if part == "localpart":
        return lambda a, d: local_domain(a)[0]
    if part == "domain":
        return lambda a, d: local_domain(a)[1]
    if part == "user":
        return lambda a, d: split(local_domain(a)[0], d)[0]
    if part == "detail":
        return lambda a, d: split(local_domain(a)[0], d)[1]
    return lambda a, d: a
