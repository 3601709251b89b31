"""engine.line_start_search: an expression that starts with a multi-line ``^`` is searched only
where a newline is, with the same match (span, groups) as ``re``'s own search, from any start
position; expressions it cannot take that way are left alone. Hand-made cases, random texts,
and the Debian rules it takes on corpus messages when ../shared is present."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gateway_milter.antispam.engine import LINE_START_MIN, _never_empty, _searches, engine_for, line_start_search
from gateway_milter.antispam.matcher import literal_set
from gateway_milter.antispam.perlre import parse_perl_regex
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, msg, write_rules
from tests.unit.antispam.test_rules_lazy import corpus_sample, debian_engine_or_skip

TAKEN = [  # each starts with a multi-line ^: the newline form is used
    r"/^From:\s+([^<]\S+\s\S+)\s(?=.{1,2048}^\1\r?$)/sm",  # __FROM_NAME_IN_MSG: a back-reference
    r"/^(?!Accept-Language|Content-)(?:[a-z]{4,}-[a-z]{3,}):\s+\d/im",  # a look-ahead first
    r"/^Message-Id:.*?^Received:/msi",  # a second ^ inside
    r"/^[^>].*?<a href=/im",  # [^>] takes a newline: the match may start on an empty line
    r"/^\s?\S{1,6}\s?$/m",
    r"/^\bword\b/m",  # \b at the start: a newline before it, as before a line start
    r"/^$/m",  # an empty match
    r"/^(a|b)+c(?=x)|/m",  # a branch after a ^-led group is still inside the whole's branch: refused
]

REFUSED = [
    r"/^a|b/m",  # the ^ is the first branch's only
    r"/^(?<=\n)a/m",  # looks behind its start
    r"/^(?<!x)a/m",
    r"/^\Aa/m",
    r"/^a/",  # not multi-line: re tries one start already
    r"/a^/m",
    r"/^ a b/mx",  # extended: the newline would be white space
]


def pattern(perl: str):  # type: ignore[no-untyped-def]
    return parse_perl_regex(perl)[0]


def texts(rng: random.Random) -> list[str]:
    pieces = ["From: Jane Doe <j@x>\n", "Jane Doe\n", "Message-Id: <1@x>\n", "Received: by x\n", "\n",
              "X-Mailer-Info: 5 abc\n", "Content-Type: 1\n", "<a href=x>\n", "> quoted\n", "word\n",
              " w \n", "ab", "c", "x", "\r\n", "Zzz zzz zzz\n", "aab\n", "bc\n"]
    out = ["", "\n", "\n\n", "x" * 300, "\n" * 300]
    for _ in range(400):
        n = rng.randrange(1, 80)
        out.append("".join(rng.choice(pieces) for _ in range(n)))
    return out


@pytest.mark.parametrize("perl", TAKEN[:-1])
def test_the_same_match_as_re_from_every_start(perl: str) -> None:
    p = pattern(perl)
    search = line_start_search(p)
    assert search is not None
    rng = random.Random(perl)
    long_ones = 0
    for text in texts(rng):
        long_ones += len(text) >= LINE_START_MIN
        for pos in sorted({0, 1, len(text) // 2, max(0, len(text) - 1), len(text), len(text) + 3}):
            want, got = p.compiled.search(text, pos), search(text, pos)
            assert (want is None) == (got is None), (perl, text, pos)
            if want is not None:
                assert (got.span(), got.groups()) == (want.span(), want.groups()), (perl, text, pos)
    assert long_ones > 50  # the newline form ran, not only the short texts' plain search


def test_a_match_on_an_empty_line_and_at_the_very_start() -> None:
    p = pattern(r"/^[^>].*?<a href=/im")
    search = line_start_search(p)
    assert search is not None
    pad = "y" * LINE_START_MIN
    for text in (f"\t<img src='data><img src='data<\n\n<A HREF={pad}", f"<x <a href=z{pad}", f">{pad}\n>\n<a href="):
        want, got = p.compiled.search(text), search(text)
        assert (want and want.span()) == (got and got.span())


@pytest.mark.parametrize("perl", REFUSED + TAKEN[-1:])
def test_refused_where_it_could_differ(perl: str) -> None:
    assert line_start_search(pattern(perl)) is None


def test_the_debian_rules_it_takes_agree_on_corpus_messages() -> None:
    eng = debian_engine_or_skip()
    taken = [(r.name, r.pattern.compiled.search, s) for r in eng.rules.values()
             if r.pattern is not None and (s := line_start_search(r.pattern))]
    assert len(taken) >= 20  # __RAND_HEADER, __FROM_NAME_IN_MSG, __HAS_HREF, ...
    checked = 0
    for path in corpus_sample(40):
        m = message_view(make_ctx(path.read_bytes()))
        for text in (m.header("ALL") or "", m.full, m.rawbody):
            if len(text) < LINE_START_MIN:
                continue
            for name, plain, search in taken:
                want, got = plain(text), search(text)
                assert (want and want.span()) == (got and got.span()), name
                checked += 1
    assert checked > 1000


# -- counting: literal_set (str.count) and the line-start search from each match's end ------------
LITERAL_CASES = [r"/e/", r"/e/i", r"/(?:e|\xc3[\xa8\xa9\xaa\xab]|\xc4[\x93\x95])/", r"/[a-c]x/", r"/foo|bar/i"]
NOT_LITERAL = [r"/aa/", r"/ab|ba/", r"/abc|b/", r"/a+/", r"/^e/m", r"/e\b/", r"/[^e]/", r"/\w/", r"/e(?=x)/"]


@pytest.mark.parametrize("perl", LITERAL_CASES)
def test_literal_counts_are_finditers(perl: str) -> None:
    p = parse_perl_regex(perl, lines=True)[0]
    lits = literal_set(p)
    assert lits
    rng = random.Random(perl)
    alphabet = ["e", "E", "x", "a", "b", "c", "foo", "BAR", "\xc3", "\xa8", "\xc4\x93", "\n", " "]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        assert sum(map(text.count, lits)) == sum(1 for _ in p.compiled.finditer(text)), (perl, text)


@pytest.mark.parametrize("perl", NOT_LITERAL)
def test_no_literal_set_where_counts_could_differ(perl: str) -> None:
    assert literal_set(parse_perl_regex(perl, lines=True)[0]) is None


def test_no_literal_set_under_unicode_case_folding() -> None:
    import re

    from gateway_milter.antispam.perlre import PerlPattern

    folded = PerlPattern("k", "i", re.compile("k", re.IGNORECASE))  # also matches the Kelvin sign
    assert folded.compiled.search("\u212a") and literal_set(folded) is None
    assert literal_set(PerlPattern("k", "i", re.compile("k", re.IGNORECASE | re.ASCII))) == ("k", "K")


@pytest.mark.parametrize("perl", [r"/^[^>].*?<a href=/im", r"/^\s?\S{1,6}\s?$/m", r"/^Received:/mi"])
def test_counting_by_search_gives_finditers_matches(perl: str) -> None:
    p = parse_perl_regex(perl, lines=True)[0]
    search = line_start_search(p)
    assert search is not None and _never_empty(p)
    rng = random.Random(perl)
    for text in texts(rng):
        want = [m.span() for m in p.compiled.finditer(text)]
        assert [m.span() for m in _searches(search, text)] == want, (perl, text)
    assert not _never_empty(parse_perl_regex(r"/^$/m", lines=True)[0])


def test_the_engine_counts_as_before(tmp_path: Path) -> None:
    """The rules that count by these paths, through a whole rule engine, against its reference
    path (every expression by finditer over the whole text)."""
    d = write_rules(tmp_path, "\n".join([
            "body __LOWER_E /e/", "tflags __LOWER_E multiple maxhits=230",
            r"body __E_LIKE /(?:e|\xc3[\xa8\xa9])/", "tflags __E_LIKE multiple maxhits=5",
            "rawbody __HREFS /^[^>].*?<a href=/im", "tflags __HREFS multiple maxhits=100",
            "meta MANY_E __LOWER_E > 20", "score MANY_E 1",
            "meta E_LIKE __E_LIKE > 3", "score E_LIKE 1",
            "meta HREFS __HREFS > 2", "score HREFS 1",
    ]))
    eng = engine_for((str(d),), 2, include_default=False)
    html = "<html><body>\n" + "\n".join(f"<p>line {i} <a href=x{i}>e</a></p>" for i in range(40)) + "\n</body></html>\n"
    for body, ctype, rule in (("e " * 300, "text/plain", "MANY_E"), ("caf\u00e9 " * 8, "text/plain; charset=utf-8", "E_LIKE"),
                              (html, "text/html", "HREFS")):
        m = message_view(make_ctx(msg(body=body, ctype=ctype)))
        lazy, ref = eng.run(m), eng.run(m, lazy=False)
        assert lazy.values == ref.values
        assert rule in {h.name for h in lazy.hits}
