"""The tagged Subject respects RFC 5322's line lengths: folded before white space so that no
line is over 78 characters where white space allows it ("Subject: " counts on the first line),
and unfolding it gives the tag and the subject back exactly. A subject near the 998-character
limit went over it once tagged, as one line."""

from __future__ import annotations

import email.header

import pytest

from gateway_milter.mime.headers import decode_words
from gateway_milter.transforms.spamheaders import folded, tagged_subject


def _lines(value: str) -> list[str]:
    first, *rest = ("Subject: " + value).split("\n")
    return [first, *rest]


def test_a_short_subject_stays_one_line() -> None:
    assert tagged_subject("[SPAM]", "Cheap watches") == "[SPAM] Cheap watches"


@pytest.mark.parametrize("subject", [
    "Your account statement for November is ready, please review the attached summary carefully today",
    " ".join(f"word{i}" for i in range(300)),  # ~2,400 characters: over 998 once joined
    "Grüße aus München, wir haben ein besonderes Angebot für Sie vorbereitet, nur heute und nur hier",
])
def test_a_long_subject_is_folded_and_unfolds_to_the_tagged_subject(subject: str) -> None:
    value = tagged_subject("[SPAM]", subject)
    assert "\n" in value
    assert all(len(line) <= 78 for line in _lines(value)), _lines(value)
    assert all(line[:1] in (" ", "\t") and line.strip() for line in _lines(value)[1:])  # continuation lines
    assert value.replace("\n", "") == "[SPAM] " + subject


def _read(value: str) -> str:
    """The Subject as a mail client shows it: unfolded, encoded words decoded."""
    return str(email.header.make_header(email.header.decode_header(value.replace("\n", ""))))


def test_an_unbroken_word_that_fits_a_line_is_left_whole_but_the_rest_still_folds() -> None:
    word = "x" * 900
    value = tagged_subject("[SPAM]", f"hello {word} world")
    assert value.replace("\n", "") == f"[SPAM] hello {word} world"
    lines = _lines(value)
    assert lines[0] == "Subject: [SPAM] hello" and lines[1] == " " + word and lines[2] == " world"


@pytest.mark.parametrize("word", ["x" * 1000, "Grüße" * 300, "a=?b?q?c?=d" * 120])
def test_a_word_longer_than_any_line_becomes_encoded_words_that_read_the_same(word: str) -> None:
    subject = f"hello {word}  world"
    value = tagged_subject("[SPAM]", subject)
    lines = _lines(value)
    assert max(len(line.encode()) for line in lines) <= 78, max(len(line) for line in lines)
    assert lines[0] == "Subject: [SPAM] hello" and lines[-1].endswith("?=  world")  # the other words stay plain
    assert _read(value) == "[SPAM] " + subject
    assert decode_words(value) == "[SPAM] " + subject


def test_white_space_next_to_an_encoded_word_survives_decoding() -> None:
    # (white space between two encoded words is dropped by a reader; it goes inside them)
    subject = "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=   " + "y" * 1200 + " \t=?UTF-8?Q?M=C3=BCnchen?= end"
    value = tagged_subject("[SPAM]", subject)
    assert all(len(line) <= 78 for line in _lines(value))
    assert _read(value) == "[SPAM] Grüße   " + "y" * 1200 + " \tMünchen end"
    assert decode_words(value) == "[SPAM] Grüße   " + "y" * 1200 + " \tMünchen end"


def test_two_long_words_side_by_side_keep_the_space_between_them() -> None:
    subject = "a" * 1000 + " " + "b" * 1000
    value = tagged_subject("[SPAM]", subject)
    assert all(len(line) <= 78 for line in _lines(value))
    assert _read(value) == "[SPAM] " + subject


def test_a_subject_folded_already_is_kept() -> None:
    assert folded("Subject", "a" * 40 + "\n " + "b" * 60) == "a" * 40 + "\n " + "b" * 60


def test_trailing_white_space_never_makes_a_line_of_its_own() -> None:
    value = folded("Subject", "word " * 20 + "     ")
    assert all(line.strip() for line in _lines(value))
    assert value.replace("\n", "") == "word " * 20 + "     "


def test_undecodable_bytes_are_encoded_words_within_the_line_length() -> None:
    subject = "Gr\udcfc\udcdfe " + "and more words " * 10  # raw Latin-1 bytes kept as surrogates
    value = tagged_subject("[SPAM]", subject)
    assert all(len(line) <= 78 for line in _lines(value))
    text = str(email.header.make_header(email.header.decode_header(value.replace("\n", " "))))
    assert text.startswith("[SPAM] Gr") and decode_words(value).startswith("[SPAM]")


def test_a_long_word_in_a_subject_that_arrived_folded_goes_on_lines_of_its_own() -> None:
    subject = "=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\n " + "z" * 1500 + "\n tail"
    value = tagged_subject("[SPAM]", subject)
    assert all(len(line) <= 78 for line in _lines(value)), [len(line) for line in _lines(value)]
    assert _read(value) == "[SPAM] Grüße " + "z" * 1500 + " tail"
