"""The text URI scan over hostile words (gateway_milter/antispam/sauris.py): the same URIs as
SpamAssassin's expression finds, in bounded time."""

from __future__ import annotations

import random
import re
import time

import pytest

from gateway_milter.antispam import sauris
from gateway_milter.antispam.sauris import UriSettings

TLDS = ("com", "org", "net", "de", "uk", "co", "info", "xn--p1ai")
# pieces that start, end or break the pattern's branches
PIECES = ("www.", "www1.", "http://", "https://", "ftp://", "ftp.", "mailto:", "@", ".", "com", ".com",
          "a", "x1", "-", "_", ",", "(", ")", "'", ">", "<", "]", "|", "/", ":80", "é", "\xa0",
          "\x1b(B", "?q=", "=", "info", "de")


def _reference(rx: re.Pattern[str]) -> re.Pattern[str]:
    """The pattern as SpamAssassin writes it, with backtracking repeats."""
    return re.compile(rx.pattern.replace("}+", "}"), rx.flags)


def _spans(matches: object) -> list[tuple[int, int, tuple[str | None, ...]]]:
    return [(m.start(), m.end(), m.groups()) for m in matches]  # type: ignore[attr-defined]


def _word(rng: random.Random, n: int, plain: str = "") -> str:
    out: list[str] = []
    size = 0
    while size < n:
        if plain and rng.random() < 0.02:
            piece = plain * rng.randrange(200, 3000)  # a long stretch without an end character
        else:
            piece = rng.choice(PIECES)
        out.append(piece)
        size += len(piece)
    return "".join(out)


def test_possessive_repeats_find_what_backtracking_finds() -> None:
    us = UriSettings(TLDS)
    rx, ref = us.text_re, _reference(us.text_re)
    assert rx.pattern != ref.pattern
    rng = random.Random(5)
    for _ in range(3000):
        text = " ".join(_word(rng, rng.randrange(1, 120)) for _ in range(rng.randrange(1, 4)))
        assert _spans(rx.finditer(text)) == _spans(ref.finditer(text)), text


@pytest.mark.parametrize("plain", ["", "w", "www.", "a.", "a,", "x@"])
def test_long_words_give_the_matches_of_a_plain_search(plain: str, monkeypatch: pytest.MonkeyPatch) -> None:
    us = UriSettings(TLDS)
    rng = random.Random(hash(plain) & 0xFFFF)
    for _ in range(8):
        word = _word(rng, rng.randrange(3000, 7000), plain)
        text = "ab " + word + " cd"
        start, end = 3, 3 + len(word)
        want = _spans(us.text_re.finditer(text, start, end))
        assert _spans(us._long_word(text, start, end)) == want
    # and through text_uris, with every word taken as long
    monkeypatch.setattr(sauris, "LONG_WORD", 0)
    long_path = UriSettings(TLDS)
    for _ in range(20):
        text = " ".join(_word(rng, rng.randrange(1, 3000), plain) for _ in range(3))
        assert long_path.text_uris([text]) == us.text_uris([text])


def test_the_uris_at_the_end_of_a_long_word_are_found() -> None:
    us = UriSettings(TLDS)
    tail = "<http://shop.example.com/x> and joe@example.org"
    got = us.text_uris(["www." * 20_000 + tail])
    # (the last 2,048 characters of "www." before the "<" are a link too, as SpamAssassin finds)
    assert got[1:] == ["http://shop.example.com/x", "mailto:joe@example.org"]
    assert got[0] == "http://" + ("www." * 513)[:2051]  # ("www." and 2,048 more, less the last ".")
    assert us.text_uris(["x," * 20_000 + "mailto:a@b.com"]) == ["mailto:a@b.com"]


@pytest.mark.parametrize("unit", ["www.", "www.www@", "www.www,", "a@", "a.com.", "http://", "x.www>" + "w" * 2500])
def test_a_500_kb_word_takes_a_fraction_of_a_second(unit: str) -> None:
    """Each used to cost up to 2,048 steps a position: 500 KB of "www." took 9 s."""
    us = UriSettings(TLDS)
    us.text_uris(["warm www.example.com"])  # (the patterns compiled)
    text = unit * (500_000 // len(unit))
    t0 = time.process_time()
    us.text_uris([text])
    assert time.process_time() - t0 < 2.0
