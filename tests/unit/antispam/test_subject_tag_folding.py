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


def test_an_unbroken_word_is_left_whole_but_the_rest_still_folds() -> None:
    word = "x" * 1000
    value = tagged_subject("[SPAM]", f"hello {word} world")
    assert value.replace("\n", "") == f"[SPAM] hello {word} world"
    lines = _lines(value)
    assert lines[0] == "Subject: [SPAM] hello" and lines[1] == " " + word and lines[2] == " world"


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
