"""Greedy repeats made possessive where giving characters back can never help.

PCRE does this itself ("auto-possessification"); Python's ``re`` does not. In
``\\nReceived:[^\\n]{0,200} for <?([^\\n\\s>;]+)>?;(?:[^\\n]+\\n+)*Subject: ...`` each
``[^\\n]+`` is followed by ``\\n``: when what follows fails, ``re`` gives the line back one
character at a time and tries ``\\n`` after each, which cannot match. On a message's header
block that one SpamAssassin rule took 0.2 ms.

A greedy repeat of one character class A may be made possessive when every character that can
come right after it (the first characters of what follows, through optional items and out of
groups) is outside A, and what follows is never empty: whatever the repeat gives back is a
character of A, so the rest cannot start there. Before ``$`` the same holds when A has no
newline; before ``\\Z`` always. The matches, their spans and their groups are then those of
the greedy pattern; anything this module cannot reason about (back-references, look-around,
``\\b``, classes of non-ASCII case folding) is left as it is.

The pattern is changed in ``re``'s own parse tree and compiled from it (``re._parser``,
``re._compiler``: private, hence any surprise from them compiles the pattern as written with
``re.compile``). tests/unit/antispam/test_possessive.py checks the rule set's patterns
against their greedy originals on real texts.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, AnyStr

C: Any = importlib.import_module("re._constants")
P: Any = importlib.import_module("re._parser")
_COMPILER: Any = importlib.import_module("re._compiler")
_SRE: Any = importlib.import_module("_sre")

_POSSESSIVE = getattr(C, "POSSESSIVE_REPEAT", None)  # Python 3.11+
_SINGLE = (C.LITERAL, C.NOT_LITERAL, C.IN, C.ANY)
_MAX_FINITE = 4096  # a class with more characters than this is not enumerated
_SPACE = frozenset(b" \t\n\r\x0b\x0c")
_DIGIT = frozenset(range(48, 58))
_WORD = frozenset(range(48, 58)) | frozenset(range(65, 91)) | frozenset(range(97, 123)) | {95}

# one character of a pattern: (op, argument, flags in force)
Item = tuple[Any, Any, int]


def compile(pattern: AnyStr, flags: int = 0) -> re.Pattern[AnyStr]:
    """``re.compile`` with the safe repeats possessive; errors and warnings as ``re.compile``
    raises them (a bytes pattern is compiled as it is)."""
    return _compile(pattern, flags)[0]


def improve(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """The same pattern with its safe repeats possessive, or None when none is (or the
    pattern is not one of ``re``'s)."""
    if not isinstance(pattern, re.Pattern) or not isinstance(pattern.pattern, str):
        return None
    out, changed = _compile(pattern.pattern, pattern.flags)
    return out if changed else None


def group_possessive(pattern: str | bytes, flags: int = 0) -> bool:
    """True when the pattern repeats a group possessively (``(?:ab?c)*+``), which Python
    before 3.11.5 matches wrongly when the group can backtrack (CPython gh-106052; Debian 12
    ships 3.11.2). A possessive repeat of one character (``[a-z]++``) is compiled to another
    operation and is right on every 3.11. The source's own patterns are checked with this
    (tests/unit/antispam/test_possessive.py); rule patterns are rewritten by :func:`compile`."""
    if _POSSESSIVE is None:
        return False
    return some(P.parse(pattern, flags).data, lambda op, av: op is _POSSESSIVE and not _COMPILER._simple(av[2]))


def _compile(pattern: AnyStr, flags: int) -> tuple[re.Pattern[AnyStr], bool]:
    """What ``re.compile`` does (parse, code, compile: re._compiler.compile), with the walk
    between parsing and code; each pattern is parsed once. Any surprise from the private API
    falls back to ``re.compile`` as it stands."""
    if _POSSESSIVE is None or not isinstance(pattern, str):
        return re.compile(pattern, flags), False
    tree = P.parse(pattern, flags)  # re.error, and warnings where they are errors, as re.compile raises them
    try:
        eff = int(flags) | tree.state.flags
        changed = _atomic(tree.data)
        # Unicode case folding (the Kelvin sign is a k) is not reasoned about: such a pattern stays
        if not (eff & re.IGNORECASE and not eff & re.ASCII):
            changed = _walk(tree.data, eff, None) or changed
        code = _COMPILER._code(tree, flags)
        groupindex = tree.state.groupdict
        indexgroup: list[str | None] = [None] * tree.state.groups
        for k, i in groupindex.items():
            indexgroup[i] = k
        out: re.Pattern[AnyStr] = _SRE.compile(pattern, eff, code, tree.state.groups - 1, groupindex,
                                               tuple(indexgroup))
    except Exception:  # noqa: BLE001 - private API of another version: compile the pattern as written
        return re.compile(pattern, flags), False
    return out, changed


def children(op: Any, av: Any) -> list[Any]:
    """The item lists inside one item of a parse tree of ``re``'s parser (a repeat's body, a
    group's, each alternative, an assertion's, both branches of a conditional)."""
    if op is C.MAX_REPEAT or op is C.MIN_REPEAT or op is _POSSESSIVE:
        return [av[2].data]
    if op is C.SUBPATTERN:
        return [av[3].data]
    if op is C.BRANCH:
        return [alt.data for alt in av[1]]
    if op is C.ATOMIC_GROUP:
        return [av.data]
    if op is C.ASSERT or op is C.ASSERT_NOT:
        return [av[1].data]
    if op is C.GROUPREF_EXISTS:
        return [av[1].data] + ([av[2].data] if av[2] is not None else [])
    return []


def some(items: Any, test: Callable[[Any, Any], bool]) -> bool:
    """Whether an item among these, at any depth, passes ``test(op, av)``."""
    return any(test(op, av) or any(some(c, test) for c in children(op, av)) for op, av in items)


def _atomic(seq: list[Any]) -> bool:
    """Rewrites each possessive repeat of a group (a rule written with Perl's ``(?:...)*+``)
    as the atomic group of the greedy repeat, its meaning, in place: Python before 3.11.5
    matches the possessive form wrongly when the group can backtrack (gh-106052), every 3.11
    matches the atomic group right. True if any changed."""
    changed = False
    for i, (op, av) in enumerate(seq):
        for sub in children(op, av):
            changed |= _atomic(sub)
        if op is _POSSESSIVE and not _COMPILER._simple(av[2]):
            seq[i] = (C.ATOMIC_GROUP, P.SubPattern(av[2].state, [(C.MAX_REPEAT, av)]))
            changed = True
    return changed


def _walk(seq: list[Any], flags: int, follow: list[Item] | None) -> bool:
    """Makes the safe repeats of ``seq`` possessive, in place; ``follow``: the first characters
    of what comes after ``seq`` (None: unknown, or the pattern's end). True if any changed."""
    changed = False
    for i, (op, av) in enumerate(seq):
        if op in _SINGLE or op is C.AT or op is C.GROUPREF:
            continue  # nothing inside to change (and no need to know what follows)
        after = _after(seq, i + 1, flags, follow)
        if op is C.MAX_REPEAT or op is C.MIN_REPEAT or op is _POSSESSIVE:
            body = av[2]
            first = _first_seq(body.data, flags)
            # after the body: another round of the repeat, or what follows the repeat
            changed |= _walk(body.data, flags, None if after is None or first is None else after + first[0])
            if op is C.MAX_REPEAT and len(body.data) == 1 and body.data[0][0] in _SINGLE \
                    and _safe((*body.data[0], flags), seq[i + 1] if i + 1 < len(seq) else None, after):
                seq[i] = (_POSSESSIVE, av)
                changed = True
        elif op is C.SUBPATTERN:
            _group, add, remove, body = av
            changed |= _walk(body.data, (flags | add) & ~remove, after)
        elif op is C.BRANCH:
            for alt in av[1]:
                changed |= _walk(alt.data, flags, after)
        elif op is C.ATOMIC_GROUP:
            changed |= _walk(av.data, flags, after)
        elif op is C.ASSERT or op is C.ASSERT_NOT:
            changed |= _walk(av[1].data, flags, None)
    return changed


def _safe(a: Item, nxt: tuple[Any, Any] | None, after: list[Item] | None) -> bool:
    """Whether repeat ``a`` can be possessive: ``nxt`` is the node right after it, ``after``
    the first characters of what follows it (None: unknown)."""
    if nxt is not None and nxt[0] is C.AT:
        if nxt[1] is C.AT_END_STRING:
            return True
        if nxt[1] is C.AT_END:
            return _contains(a, 10) is False
        return False
    return after is not None and all(_disjoint(a, b) for b in after)


def _after(seq: list[Any], start: int, flags: int, follow: list[Item] | None) -> list[Item] | None:
    """First characters of ``seq[start:]`` then ``follow``, never empty; None if unknown."""
    got = _first_seq(seq[start:], flags)
    if got is None:
        return None
    first, nullable = got
    if nullable:
        return None if follow is None else first + follow
    return first


def _first_seq(seq: list[Any], flags: int) -> tuple[list[Item], bool] | None:
    """(first characters, whether the sequence can match the empty string), or None."""
    acc: list[Item] = []
    for node in seq:
        got = _first(node, flags)
        if got is None:
            return None
        first, nullable = got
        acc += first
        if not nullable:
            return acc, False
    return acc, True


def _first(node: tuple[Any, Any], flags: int) -> tuple[list[Item], bool] | None:
    op, av = node
    if op in _SINGLE:
        return [(op, av, flags)], False
    if op is C.MAX_REPEAT or op is C.MIN_REPEAT or op is _POSSESSIVE:
        lo, _hi, body = av
        got = _first_seq(body.data, flags)
        return None if got is None else (got[0], lo == 0 or got[1])
    if op is C.SUBPATTERN:
        _group, add, remove, body = av
        return _first_seq(body.data, (flags | add) & ~remove)
    if op is C.BRANCH:
        acc: list[Item] = []
        nullable = False
        for alt in av[1]:
            got = _first_seq(alt.data, flags)
            if got is None:
                return None
            acc += got[0]
            nullable = nullable or got[1]
        return acc, nullable
    return None  # anchors, look-around, back-references, conditionals: not reasoned about


def _disjoint(a: Item, b: Item) -> bool:
    fa = _finite(a)
    if fa is not None:
        return all(_contains(b, c) is False for c in fa)
    fb = _finite(b)
    if fb is not None:
        return all(_contains(a, c) is False for c in fb)
    return False


def _folds(c: int, flags: int) -> tuple[int, ...]:
    if flags & re.IGNORECASE and (65 <= c <= 90 or 97 <= c <= 122):
        return c, c ^ 0x20  # ASCII case folding only (improve() refuses the Unicode kind)
    return (c,)


def _finite(it: Item) -> frozenset[int] | None:
    """Every character the item can match, where that is a short list (else None)."""
    op, av, flags = it
    if op is C.LITERAL:
        return frozenset(_folds(av, flags))
    if op is not C.IN:
        return None
    out: set[int] = set()
    for sub, arg in av:
        if sub is C.NEGATE:
            return None
        if sub is C.LITERAL:
            out.update(_folds(arg, flags))
        elif sub is C.RANGE:
            lo, hi = arg
            if hi - lo > _MAX_FINITE:
                return None
            for c in range(lo, hi + 1):
                out.update(_folds(c, flags))
        elif sub is C.CATEGORY and flags & re.ASCII:
            cat = {C.CATEGORY_DIGIT: _DIGIT, C.CATEGORY_SPACE: _SPACE, C.CATEGORY_WORD: _WORD}.get(arg)
            if cat is None:
                return None
            out |= cat
        else:
            return None
    return frozenset(out)


def _contains(it: Item, c: int) -> bool | None:
    """Whether the item matches character ``c``; None when unknown."""
    op, av, flags = it
    cs = _folds(c, flags)
    if op is C.LITERAL:
        return any(x in _folds(av, flags) for x in cs)
    if op is C.NOT_LITERAL:
        return not any(x in _folds(av, flags) for x in cs)
    if op is C.ANY:
        return bool(flags & re.DOTALL) or c != 10
    if op is not C.IN:
        return None
    if not flags & re.ASCII and any(sub is C.CATEGORY for sub, _ in av):
        return None  # Unicode classes: not reasoned about
    found = [in_class(av, x) for x in cs]
    if None in found:
        return None
    # in_class applies the class's negation: with case folding the character matches when one
    # of its cases is in the set, so a negated class matches when none is
    return all(found) if any(sub is C.NEGATE for sub, _ in av) else any(found)


def in_class(items: Any, ch: int) -> bool | None:
    """Whether a parsed character class (``IN``'s items) matches the character ``ch``, with
    ASCII classes (``re.ASCII``) and case as written; None: unknown."""
    hit = False
    negate = False
    for op, av in items:
        if op is C.NEGATE:
            negate = True
        elif op is C.LITERAL:
            hit = hit or av == ch
        elif op is C.RANGE:
            hit = hit or av[0] <= ch <= av[1]
        elif op is C.CATEGORY:
            word, digit, space = ch in _WORD, ch in _DIGIT, ch in _SPACE
            m = {C.CATEGORY_DIGIT: digit, C.CATEGORY_NOT_DIGIT: not digit, C.CATEGORY_SPACE: space,
                 C.CATEGORY_NOT_SPACE: not space, C.CATEGORY_WORD: word, C.CATEGORY_NOT_WORD: not word}.get(av)
            if m is None:
                return None
            hit = hit or m
        else:
            return None
    return hit != negate
