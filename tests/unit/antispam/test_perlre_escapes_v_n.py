"""Perl's ``\\v`` (any vertical white space), ``\\V``, ``\\H`` and ``\\N`` (any character but a
line end) are translated: ``\\v`` went to Python as the vertical tab alone and the regex module
read ``\\N`` as a literal ``N``, so such rules loaded, were not listed as unsupported, and never
hit. ``\\N{...}`` and these escapes inside a character class (but ``\\v``) are listed instead."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.perlre import PatternError, parse_perl_regex


@pytest.mark.parametrize(("rule", "hits", "misses"), [
    (r"/a\vb/", ["a\rb", "a\nb", "a\x0bb", "a\x0cb"], ["axb", "a b"]),
    (r"/a[\v]b/", ["a\rb", "a\nb"], ["axb"]),
    (r"/a\Vb/", ["axb", "a b"], ["a\rb", "a\nb"]),
    (r"/a\Hb/", ["axb", "a\nb"], ["a b", "a\tb"]),
    (r"/a\Nb/", ["axb", "a b", "aNb"], ["a\nb"]),
])
def test_perl_escapes_match_as_in_perl(rule: str, hits: list[str], misses: list[str]) -> None:
    pattern, _ = parse_perl_regex(rule)
    assert all(pattern.compiled.search(t) for t in hits)
    assert not any(pattern.compiled.search(t) for t in misses)


@pytest.mark.parametrize("rule", [r"/\N{U+41}/", r"/[\N]/", r"/[\H]/", r"/[\V]/"])
def test_what_has_no_translation_is_listed(rule: str) -> None:
    with pytest.raises(PatternError):
        parse_perl_regex(rule)
