"""The audit of the SpamAssassin-compatible headers (transform spamheaders): a Subject of raw
8-bit bytes that are not UTF-8 kept byte for byte, every incoming X-Spam-* header removed (not
six names only), exempt mail with the headers of ham, and the already-tagged check as
SpamAssassin's rewrite_header reads it."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path
from typing import Any

import Milter
import pytest
from Milter.testctx import TestCtx

from gateway_milter.front.milter import BulwarkMilter
from gateway_milter.mime.headers import decode_words
from gateway_milter.transforms.spamheaders import (
    is_foreign_spam_header,
    is_tagged,
    spam_headers,
    without_spam_headers,
)
from gateway_milter.verdict import Outcome
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules
from tests.unit.antispam.test_spamheaders_occurrences import NO_REPLY_BITS, OneOccurrenceCtx
from tests.unit.spine.conftest import BASE_POLICY, apply_like_an_mta, make_gateway

RULES = "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n"


def scoring_policy(tmp: Path, **scoring: Any) -> Any:
    rules = write_rules(tmp, RULES)
    return policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                   "scoring": {"layers": ["rules"], "subject_tag": "[SPAM]", **scoring}},
)


def raw_message(subject: bytes, charset: str, extra: bytes = b"", body: bytes = b"spammy") -> bytes:
    return (b"From: Alice <alice@sender.test>\r\nTo: bob@example.com\r\nSubject: " + subject + b"\r\n"
            b"Message-ID: <1@sender.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset="
            + charset.encode() + b"\r\n" + extra + b"\r\n" + body + b"\r\n")


def delivered(tmp: Path, raw: bytes, **kw: Any) -> tuple[Any, list[tuple[str, str]]]:
    ctx = make_ctx(raw, scoring_policy(tmp), **kw)
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    edits = list(res.header_edits) if res is not None else []
    return ctx, apply_like_an_mta(ctx.headers, edits)


def subject_edits(tmp: Path, raw: bytes) -> list[Any]:
    ctx = make_ctx(raw, scoring_policy(tmp))
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    return [e for e in res.header_edits if e.name == "Subject"]


def word_bytes(value: str) -> tuple[list[str], bytes]:
    words = re.findall(r"=\?([^?]+)\?B\?([^?]*)\?=", value)
    return [cs for cs, _ in words], b"".join(base64.b64decode(b) for _, b in words)


# -- 1. a Subject of raw 8-bit bytes that are not UTF-8 -----------------------------------------
@pytest.mark.parametrize(("text", "charset"), [("Привет мир", "koi8-r"), ("Preis 5 €", "windows-1252"),
                                               ("こんにちは", "shift_jis")])
def test_raw_8bit_subject_keeps_its_bytes_under_the_declared_charset(tmp_path: Path, text: str, charset: str) -> None:
    # before: read as ISO-8859-1 and re-encoded as one UTF-8 word: the bytes were lost and
    # "Привет мир" read "ðÒÉ×ÅÔ ÍÉÒ"
    original = text.encode(charset)
    (edit,) = subject_edits(tmp_path, raw_message(original, charset))
    assert edit.op == "change" and edit.index == 1
    edit.value.encode("utf-8")  # (pymilter sends header values as strict UTF-8)
    assert edit.value.isascii() and edit.value.startswith("[SPAM] =?")
    labels, payload = word_bytes(edit.value)
    assert set(labels) == {charset} and payload == original
    assert decode_words(edit.value) == f"[SPAM] {text}"


def test_a_long_multibyte_subject_is_split_between_whole_characters(tmp_path: Path) -> None:
    text = "こんにちは世界" * 12
    original = text.encode("shift_jis")
    (edit,) = subject_edits(tmp_path, raw_message(original, "shift_jis"))
    labels, payload = word_bytes(edit.value)
    assert len(labels) > 1 and payload == original
    words = re.findall(r"=\?[^?]+\?B\?[^?]*\?=", edit.value)
    assert all(len(w) <= 75 for w in words)
    for w in words:  # each word holds whole characters (RFC 2047 5)
        base64.b64decode(w.split("?")[3]).decode("shift_jis")
    lines = edit.value.split("\n")
    assert len("Subject: " + lines[0]) <= 78 and all(len(x) <= 78 for x in lines[1:])
    assert decode_words(edit.value.replace("\n", "")) == f"[SPAM] {text}"  # (as a reader unfolds it)


def test_raw_8bit_subject_no_declared_charset_reads_is_left_untagged_with_a_trace(tmp_path: Path) -> None:
    # the message says UTF-8, the bytes are not: no charset to label them with, and the milter
    # cannot send them raw; the flag headers still say spam
    ctx, out = delivered(tmp_path, raw_message("Привет мир".encode("koi8-r"), "utf-8"))
    (subject,) = [v for n, v in out if n == "Subject"]
    assert subject == ctx.header("Subject")  # (not changed)
    assert subject.encode("utf-8", "surrogateescape").strip() == "Привет мир".encode("koi8-r")
    assert ("X-Spam-Flag", "YES") in out
    assert any(t.source == "spamheaders" and t.event == "subject_tag" for t in ctx.trace)


def test_raw_8bit_subject_with_encoded_words_is_left_untagged(tmp_path: Path) -> None:
    raw = raw_message(b"=?utf-8?q?Gr=C3=BC=C3=9Fe?= " + "мир".encode("koi8-r"), "koi8-r")
    assert subject_edits(tmp_path, raw) == []


def test_a_raw_utf8_subject_still_gets_the_tag_in_front_of_its_raw_value(tmp_path: Path) -> None:
    (edit,) = subject_edits(tmp_path, raw_message("Grüße aus Köln".encode(), "utf-8"))
    assert edit.value == "[SPAM] Grüße aus Köln"


def test_through_the_milter_front_every_value_is_utf8_and_the_bytes_survive(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []

    class StrictCtx(OneOccurrenceCtx):  # type: ignore[misc]
        """pymilter's C layer takes header values as str and encodes them as strict UTF-8."""

        def addheader(self, field: str, value: str, idx: int = -1) -> Any:
            sent.append(value)
            value.encode("utf-8")
            return super().addheader(field, value, idx)

        def chgheader(self, field: str, idx: int, value: str) -> None:
            sent.append(value)
            value.encode("utf-8")
            super().chgheader(field, idx, value)

    monkeypatch.setattr(TestCtx, "default_opts", [Milter.CURR_ACTS, 0x1FFFFF & ~NO_REPLY_BITS, 0, 0])
    rules = write_rules(tmp_path, RULES)
    doc = {**BASE_POLICY, "settings": {**BASE_POLICY["settings"],
                                       "rules": {"include_default": False, "rule_dirs": [str(rules)]},
                                       "scoring": {"layers": ["rules"], "subject_tag": "[SPAM]",
                                                   "quarantine_score": 10.0, "reject_score": 20.0}}}
    gw, _, _ = make_gateway(doc)
    BulwarkMilter.gateway = gw
    Milter.factory = BulwarkMilter
    original = "Привет мир".encode("koi8-r")
    ctx = StrictCtx()
    assert ctx._connect(host="client.outside.test", helo="client.outside.test", ip="198.51.100.5") == Milter.CONTINUE
    rc = ctx._feedFile(io.BytesIO(raw_message(original, "koi8-r").replace(b"\r\n", b"\n")),
                       "alice@outside.test", "bob@example.com")
    ctx._close()
    assert rc == Milter.ACCEPT
    (subject,) = ctx._msg.get_all("Subject")
    assert word_bytes(subject)[1] == original and decode_words(subject).strip() == "[SPAM] Привет мир"
    assert ctx._msg.get_all("X-Spam-Flag") == ["YES"]


# -- 2. every incoming X-Spam-* header ----------------------------------------------------------
FORGED = ("X-Spam-Tests: NONE\r\nX-Spam-Bar: /\r\nX-Spam-Virus: No\r\nX-Spam: Yes\r\nx-spam-bar: ---\r\n"
          "X-Spam-Prev-Subject: earlier\r\nX-Spammy: keep\r\nX-Spam-Flag: NO\r\n")


def forged_out(tmp: Path, **scoring: Any) -> list[str]:
    rules = write_rules(tmp, RULES)
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                  "scoring": {"layers": ["rules"], **scoring}})
    ctx = make_ctx(msg("Hello", headers=FORGED), pol)
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    edits = list(res.header_edits) if res is not None else []
    return [f"{n}:{v.strip()}" for n, v in apply_like_an_mta(ctx.headers, edits) if n.lower().startswith("x-spam")]


@pytest.mark.parametrize("scoring", [{}, {"add_headers": False}, {"mode": "off"}], ids=["on", "add_headers-off", "off"])
def test_every_foreign_x_spam_header_is_removed_but_prev(tmp_path: Path, scoring: dict[str, Any]) -> None:
    kept = forged_out(tmp_path, **scoring)
    foreign = [h for h in kept if h.split(":")[0] not in ("X-Spam-Status", "X-Spam-Score", "X-Spam-Level")]
    assert foreign == ["X-Spam-Prev-Subject:earlier", "X-Spammy:keep"]


def test_remove_foreign_headers_off_keeps_the_other_x_spam_headers(tmp_path: Path) -> None:
    kept = forged_out(tmp_path, remove_foreign_headers=False)
    assert "X-Spam-Tests:NONE" in kept and "X-Spam:Yes" in kept and "x-spam-bar:---" in kept
    assert "X-Spam-Flag:NO" not in kept  # (one the gateway writes: replaced)


def test_a_released_copy_loses_the_same_headers() -> None:
    raw = msg("Hello", headers=FORGED + "X-Spam-Bar: folded\r\n\tcontinued\r\n")
    out = without_spam_headers(raw).decode()
    assert "X-Spam-Tests" not in out and "X-Spam: " not in out and "continued" not in out
    assert "X-Spam-Prev-Subject: earlier" in out and "X-Spammy: keep" in out and "Subject: Hello" in out


@pytest.mark.parametrize("eol", ["\r\n", "\n"], ids=["crlf", "lf"])
@pytest.mark.parametrize("last", ["X-Spam-Flag: NO", "X-Spam-Status: No, score=0.1\ttests=NONE", "X-Spam-Status: No,\n\tfolded"])
def test_a_released_copy_keeps_its_body_byte_for_byte(eol: str, last: str) -> None:
    """The dropped field is the header's last one: the body after the empty line is the same
    bytes (before: one more empty line, which broke the sender's DKIM body hash)."""
    body = f"Please find the invoice.{eol}-- {eol}Alice{eol}"
    head = f"From: alice@sender.test{eol}To: bob@example.com{eol}Subject: invoice{eol}"
    raw = (head + last.replace("\n", eol) + eol + eol + body).encode()
    assert without_spam_headers(raw) == (head + eol + body).encode()
    unchanged = (head + eol + body).encode()
    assert without_spam_headers(unchanged) == unchanged
    assert without_spam_headers(head.encode()) == head.encode()  # (no body at all)


def test_which_names_are_foreign() -> None:
    assert all(map(is_foreign_spam_header, ["X-Spam", "x-spam-tests", "X-SPAM-VIRUS", "X-Spam-Prevx"]))
    assert not any(map(is_foreign_spam_header, ["X-Spam-Prev-Subject", "x-spam-prev-content-type", "X-Spammy",
                                                "X-Spamd-Result", "X-Bulwark-Result"]))


# -- 3. exempt mail: the headers of ham, folded -------------------------------------------------
def test_exempt_mail_gets_the_headers_of_ham_folded(tmp_path: Path) -> None:
    # before: X-Spam-Status alone, one line of 91 characters, no X-Spam-Score / X-Spam-Level
    _, out = delivered(tmp_path, msg("Hello", "spammy", headers="X-Spam-Score: -10\r\nX-Spam-Level: \r\n"),
                       auth="alice")
    spam = {n: v for n, v in out if n.lower().startswith("x-spam")}
    assert set(spam) == {"X-Spam-Status", "X-Spam-Score", "X-Spam-Level"}
    assert spam["X-Spam-Score"] == "0.0" and spam["X-Spam-Level"] == ""
    status = spam["X-Spam-Status"]
    assert status.startswith("No, score=0.0 required=5.0 tests=SCORING_EXEMPT autolearn=no")
    lines = ("X-Spam-Status: " + status).split("\n")
    assert len(lines) > 1 and all(len(x) <= 78 for x in lines)


# -- 4. the already-tagged check ---------------------------------------------------------------
@pytest.mark.parametrize(("subject", "tagged"), [
    ("[SPAM] hello", True), ("[spam] hello", True), ("  [Spam]\thello", True), ("[SPAM]", True),
    ("=?UTF-8?Q?[spam]_Gr=C3=BC=C3=9Fe?=", True),
    ("[SPAM]foo", False), ("Re: [SPAM] hello", False), ("hello", False), ("[SPA", False)])
def test_already_tagged_is_case_insensitive_and_needs_white_space(subject: str, tagged: bool) -> None:
    assert is_tagged("[SPAM]", subject) is tagged


def test_a_lower_case_tag_is_not_tagged_again_and_a_glued_one_is(tmp_path: Path) -> None:
    assert subject_edits(tmp_path, msg("[spam] hello", "spammy")) == []
    (edit,) = subject_edits(tmp_path, msg("[SPAM]foo", "spammy"))
    assert edit.value == "[SPAM] [SPAM]foo"
