"""Repeats made possessive (gateway_milter/antispam/possessive.py) match exactly what the greedy
patterns match: the same spans and groups, on hand-picked cases, on random patterns over a
small alphabet, and for Debian's rule set on corpus texts (when ../shared is present)."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from gateway_milter.antispam import possessive
from gateway_milter.antispam.perlre import translate

A = re.ASCII


def matches(p: re.Pattern[str], text: str) -> list[tuple[tuple[int, int], tuple[Any, ...]]]:
    return [(m.span(), m.groups()) for m in p.finditer(text)]


def possessive_ops(p: re.Pattern[str]) -> int:
    """How many repeats of ``p``'s parse tree are possessive after improve()."""
    tree = possessive.P.parse(p.pattern, p.flags)
    possessive._walk(tree.data, p.flags | tree.state.flags, None)
    return repr(tree).count("POSSESSIVE_REPEAT")


@pytest.mark.parametrize(("source", "flags", "changes"), [
    (r"a+b", A, True),  # b cannot be given back by a+
    (r"a+a", A, False),  # a+ must give one back
    (r"[a-z]+\d", A | re.I, True),
    (r"A+a", A | re.I, False),  # case-insensitive: A+ takes the a
    (r"\w+\s", A, True),
    (r"\w+\w", A, False),
    (r"[^\n]+$", A | re.M, True),  # $ needs a newline or the end: nothing of [^\n] helps
    (r".+$", A | re.S, False),  # with DOTALL a newline can be given back
    (r"[^\n]+\Z", A, True),
    (r"a+\b", A, False),  # \b: not reasoned about
    (r"(a)+\1", A, False),  # a back-reference follows
    (r"a+(?=b)", A, False),  # look-ahead follows
    (r"x*", A, False),  # nothing follows: nothing to gain
    (r"a+(?:b|c?)a", A, True),  # c? before a: yes; a+ before (b|c?)a: no (a may follow)
    (r"(?:[^\n]+\n+)*Subject", A | re.M, True),
    (r"(?i:a+)A", A, False),  # scoped flags: the repeat folds case
    (r"a+(?i:B)", A, True),
])
def test_hand_picked(source: str, flags: int, changes: bool) -> None:
    p = re.compile(source, flags)
    q = possessive.improve(p)
    assert (q is not None) == changes
    if q is not None:
        assert q.pattern == p.pattern and q.flags == p.flags and q.groups == p.groups
        for text in ("", "aab", "aaa", "Aa", "abc\nab\n", "a b\nSubject", "xx\n\nSubject", "aaB", "ab1 A1"):
            assert matches(q, text) == matches(p, text), text


def test_the_received_subject_rule_is_made_possessive_where_it_backtracks() -> None:
    p = translate(r"\nReceived:[^\n]{0,200} for <?([^\n\s>;]+)>?;(?:[^\n]+\n+)*Subject: [^\n]{0,100}\1[^a-z0-9]",
                  "ism").compiled
    assert possessive_ops(p) == 4  # the capture's class, >?, [^\n]+ and \n+; not [^\n]{0,n} before ' for'
    head = "\nReceived: from a by b for <u@example.org>; now\nX: y\n" + "Z: long line\n" * 50
    assert p.search(head + "Subject: hi u@example.org!\n")
    assert not p.search(head + "Subject: hi u@example.orgz\n")


def test_the_unchanged_patterns_are_kept() -> None:
    assert possessive.improve(re.compile("ab", A)) is None
    import regex

    assert possessive.improve(regex.compile(r"a+b")) is None  # the regex module: left alone
    assert possessive.improve(re.compile(r"a+b", re.I)) is None  # Unicode case folding: left alone


# -- random patterns ---------------------------------------------------------------------------
ATOMS = ["a", "b", "\\n", " ", "[ab]", "[^a]", "[^\\n]", "\\w", "\\s", "\\d", "\\S", ".", "[a-c]", "1"]


def random_pattern(rng: random.Random, depth: int = 0) -> str:
    parts = []
    groups = 0
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        if r < 0.15 and depth < 2:
            inner = random_pattern(rng, depth + 1)
            alt = "|" + random_pattern(rng, depth + 1) if rng.random() < 0.4 else ""
            item = f"({inner}{alt})" if rng.random() < 0.5 else f"(?:{inner}{alt})"
        elif r < 0.2:
            item = rng.choice(["$", "^", "\\Z", "\\b"])
        else:
            item = rng.choice(ATOMS)
        if item.startswith("("):  # a group repeated without bound could backtrack for ages
            item += rng.choice(["", "", "?", "{0,2}", "{2}"])
        elif not item.startswith(("$", "^", "\\Z", "\\b")):
            item += rng.choice(["", "", "+", "*", "?", "{1,3}", "{0,2}", "+?", "{2}"])
        parts.append(item)
        groups += item.startswith("(") and not item.startswith("(?:")
    return "".join(parts)


def test_random_patterns_match_as_the_greedy_ones() -> None:
    rng = random.Random(5)
    alphabet = "aab b\n1c\nA"
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(60)]
    changed = 0
    for _ in range(10000):
        src = random_pattern(rng)
        flags = A | rng.choice([0, re.I, re.M, re.S, re.I | re.M])
        try:
            p = re.compile(src, flags)
        except re.error:
            continue
        q = possessive.improve(p)
        if q is None:
            continue
        changed += 1
        for t in texts:
            assert matches(q, t) == matches(p, t), (src, flags, t)
    assert changed > 1500  # the walk found something to change in a good share of them


# -- the rule set on corpus texts ----------------------------------------------------------------
def test_debians_rules_match_as_before_on_corpus_texts() -> None:
    from tests.unit.antispam.test_rules_lazy import CORPUS, corpus_sample

    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} absent (the shared corpus sits beside the repository)")
    from gateway_milter.antispam.engine import BODY_KINDS, _Texts, engine_for
    from gateway_milter.antispam.saview import message_view
    from tests.unit.antispam.helpers import make_ctx

    eng = engine_for((), 2, include_default=True)
    pool: dict[str, list[str]] = {}
    for path in corpus_sample(90):
        texts = _Texts(message_view(make_ctx(path.read_bytes())), eng.indexes, eng.uri_settings)
        for k in BODY_KINDS:
            if (x := texts.text(k)):
                pool.setdefault(k, []).append(x)
        for h in ("ALL", "Subject", "From", "Received"):
            if (hx := texts.header_text(h)):
                pool.setdefault("header", []).append(hx)
    changed = 0
    for r in eng.rules.values():
        if r.pattern is None or not isinstance(r.pattern.compiled, re.Pattern):
            continue
        improved = r.pattern.compiled
        greedy = re.compile(improved.pattern, improved.flags)
        if possessive.improve(greedy) is None:
            continue
        changed += 1
        for text in pool["header"] if r.kind in ("header", "mimeheader") else pool.get(r.kind, pool["body"]):
            assert matches(improved, text) == matches(greedy, text), r.name
    assert changed > 400  # 642 of Debian's 1,229 stdlib patterns at the time of writing


# -- possessive repeats of groups (CPython gh-106052) -----------------------------------------------
# Python before 3.11.5 (Debian 12's /usr/bin/python3 is 3.11.2) matches a possessive repeat of a
# group wrongly when the group can backtrack: re.fullmatch("(?:ab?c)*+", "a") matched. Its
# meaning is the atomic group of the greedy repeat, which every 3.11 matches right.

@pytest.mark.parametrize(("source", "atomic", "text", "whole"), [
    (r"(?:ab?c)*+", r"(?>(?:ab?c)*)", "a", False),  # the issue's own case
    (r"x(?:ab?c)*+$", r"x(?>(?:ab?c)*)$", "xa", False),
    (r"(?:ab?c)*+", r"(?>(?:ab?c)*)", "abcac", True),
    (r"(?:(?:ab?c)++d)*+", r"(?>(?:(?>(?:ab?c)+)d)*)", "abcdacd", True),
    (r"(?:(?:ab?c)++d)*+", r"(?>(?:(?>(?:ab?c)+)d)*)", "abcda", False),
    (r"(?:ab|a)++b", r"(?>(?:ab|a)+)b", "abab", False),  # the repeat keeps "abab": no b is left
    (r"(?:ab|a){1,2}+c", r"(?>(?:ab|a){1,2})c", "abac", True),
])
def test_a_possessive_group_is_compiled_as_its_atomic_group(source: str, atomic: str, text: str,
                                                            whole: bool) -> None:
    assert possessive.group_possessive(source)
    assert not possessive.group_possessive(atomic)
    assert (re.fullmatch(atomic, text) is not None) is whole
    assert (possessive.compile(source).fullmatch(text) is not None) is whole


def test_a_possessive_repeat_of_one_character_is_not_a_group() -> None:
    # compiled to another operation, right on every 3.11: the word patterns keep theirs
    assert not possessive.group_possessive(r"[^\W_]++(?>(?:[_'$%.,-]++[^\W_]++)*)")
    assert not possessive.group_possessive(r"\w++\s")
    assert possessive.group_possessive(r"a(?:b|bc)?+c")


def test_no_pattern_of_the_gateway_repeats_a_group_possessively() -> None:
    # every compiled pattern a module of gateway_milter holds (at module level, and in the
    # tuples, lists and dicts there): none may use the form that 3.11.2 gets wrong
    import importlib
    import pkgutil

    import gateway_milter

    def patterns(v: Any, depth: int = 0) -> Any:
        if isinstance(v, re.Pattern):
            yield v
        elif depth < 2 and isinstance(v, (tuple, list, frozenset, set)):
            for x in v:
                yield from patterns(x, depth + 1)
        elif depth < 2 and isinstance(v, dict):
            for x in v.values():
                yield from patterns(x, depth + 1)

    seen, found = 0, []
    for info in pkgutil.walk_packages(gateway_milter.__path__, "gateway_milter."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            for p in patterns(value):
                seen += 1
                if possessive.group_possessive(p.pattern, p.flags):
                    found.append(f"{info.name}.{name}: {p.pattern!r:.80}")
    assert seen > 300  # (the walk reached the modules)
    assert found == []


def test_the_word_pattern_stops_at_a_joiner_before_a_space() -> None:
    # the tokenizer's words on any 3.11: "bob," was a word on 3.11.2 with "(?:...)*+"
    from gateway_milter.antispam.tokenizer import _WORD, _WORD_ASCII

    for p in (_WORD, _WORD_ASCII):
        assert p.findall("hi bob, prices from $1,299.00 -- it's o.k. x'y") == [
            "hi", "bob", "prices", "from", "1,299.00", "it's", "o.k", "x'y"]
