"""Forged X-Spam-* headers repeated by the sender, and the folding of X-Spam-Status, as an MTA
applies them: libmilter's SMFIR_CHGHEADER deletes the index-th occurrence only (pymilter's
TestCtx deletes every occurrence, which hid a forged second copy), and header values take bare
LF line breaks (a CRLF there reaches the recipient as CR CR LF)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import Milter
import pytest
from Milter.testctx import TestCtx

from gateway_milter.front.milter import BulwarkMilter
from gateway_milter.transforms.spamheaders import spam_headers, status_line
from gateway_milter.verdict import Outcome
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules
from tests.unit.spine.conftest import BASE_POLICY, apply_like_an_mta, make_gateway

FORGED = ("X-Spam-Flag: YES\r\nx-spam-flag: YES\r\n"
          "X-Spam-Status: Yes, score=50.0 forged\r\nX-SPAM-STATUS: Yes, score=50.0 forged\r\n"
          "X-Spam-Level: **************************************************\r\n")


def scoring_policy(tmp: Path) -> Any:
    rules = write_rules(tmp, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n")
    return policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                   "scoring": {"layers": ["rules"], "subject_tag": "[SPAM]"}})


def test_it_deletes_each_forged_occurrence_from_the_last_to_the_first(tmp_path: Path) -> None:
    ctx = make_ctx(msg("Hello", headers=FORGED), scoring_policy(tmp_path))
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    deletes = [(e.name, e.index) for e in res.header_edits if e.op == "delete"]
    assert deletes == [("X-Spam-Flag", 2), ("X-Spam-Flag", 1), ("X-Spam-Status", 2), ("X-Spam-Status", 1),
                       ("X-Spam-Level", 1)]
    delivered = apply_like_an_mta(ctx.headers, list(res.header_edits))
    spam = [(n, v) for n, v in delivered if n.lower().startswith("x-spam-")]
    assert [n for n, _ in spam] == ["X-Spam-Status", "X-Spam-Score", "X-Spam-Level"]
    assert all("forged" not in v for _, v in spam) and spam[2][1] == ""


def test_it_deletes_every_copy_of_the_subject_it_tags(tmp_path: Path) -> None:
    ctx = make_ctx(msg("Offer", "spammy", headers="Subject: second\r\n"), scoring_policy(tmp_path))
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    delivered = apply_like_an_mta(ctx.headers, list(res.header_edits))
    assert [v for n, v in delivered if n == "Subject"] == ["[SPAM] Offer"]
    assert all(e.index >= 1 for e in res.header_edits if e.op == "delete")


def test_it_leaves_the_delivered_view_without_forged_copies(tmp_path: Path) -> None:
    # later transforms (DKIM signing) read the context's view of the delivered message
    ctx = make_ctx(msg("Hello", headers=FORGED), scoring_policy(tmp_path))
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    ctx.apply_delivery_changes(list(res.header_edits), None)
    assert all("forged" not in v for v in ctx.header_values("X-Spam-Status"))
    assert ctx.header_values("X-Spam-Flag") == []


def test_it_folds_the_status_line_with_bare_lf() -> None:
    line = status_line(True, 9.0, 5.0, [f"RULE_NUMBER_{i}" for i in range(20)], "no")
    assert "\r" not in line and "\n\t" in line
    assert all(len(x) <= 90 for x in line.split("\n"))


# -- through the milter front, with an MTA that deletes one occurrence per request ---------------
class OneOccurrenceCtx(TestCtx):  # type: ignore[misc]
    """TestCtx whose chgheader does what libmilter asks of the MTA: change the idx-th
    occurrence of the field (1-based, case-insensitive), not every one."""

    def chgheader(self, field: str, idx: int, value: str) -> None:
        if not self._body:
            raise OSError("chgheader not called from eom()")
        hs = self._msg._headers
        positions = [i for i, (n, _) in enumerate(hs) if n.lower() == field.lower()]
        if 1 <= idx <= len(positions):
            if value == "":
                del hs[positions[idx - 1]]
            else:
                hs[positions[idx - 1]] = (hs[positions[idx - 1]][0], value)
        self._headerschanged = True


NO_REPLY_BITS = Milter.P_NR_CONN | Milter.P_NR_HELO | Milter.P_NR_DATA | Milter.P_NR_HDR | Milter.P_NR_BODY


def test_it_delivers_none_of_the_forged_copies_through_the_milter(monkeypatch: pytest.MonkeyPatch) -> None:
    # TestCtx closes the session on a NOREPLY answer: the MTA here offers no no-reply bits
    monkeypatch.setattr(TestCtx, "default_opts", [Milter.CURR_ACTS, 0x1FFFFF & ~NO_REPLY_BITS, 0, 0])
    doc = {**BASE_POLICY, "settings": {**BASE_POLICY["settings"], "scoring": {"mode": "on"}}}
    gw, _, _ = make_gateway(doc)
    BulwarkMilter.gateway = gw
    Milter.factory = BulwarkMilter
    raw = (b"From: Alice <alice@outside.test>\nTo: bob@example.com\nSubject: hello\n"
           + FORGED.replace("\r\n", "\n").encode() + b"\nHi Bob.\n")
    ctx = OneOccurrenceCtx()
    assert ctx._connect(host="client.outside.test", helo="client.outside.test", ip="198.51.100.5") == Milter.CONTINUE
    rc = ctx._feedFile(io.BytesIO(raw), "alice@outside.test", "bob@example.com")
    ctx._close()
    assert rc == Milter.ACCEPT
    assert ctx._msg.get_all("X-Spam-Flag") is None
    [status] = ctx._msg.get_all("X-Spam-Status")
    assert status.startswith("No, score=") and "forged" not in status
    assert ctx._msg.get_all("X-Spam-Level") == [""]


def test_a_header_delete_names_its_occurrence():
    # libmilter's change-header call removes one occurrence: an "every occurrence" delete
    # (index 0) was sent as index 1 by the milter front and skipped by the in-process view
    import pytest

    from gateway_milter.verdict import HeaderEdit

    with pytest.raises(ValueError):
        HeaderEdit("delete", "X-Spam-Flag")
    with pytest.raises(ValueError):
        HeaderEdit("delete", "X-Spam-Flag", index=-1)
    assert HeaderEdit("delete", "X-Spam-Flag", index=2).index == 2


def test_it_tags_a_subject_of_raw_8bit_bytes_as_encoded_words(tmp_path: Path) -> None:
    # bytes that are not UTF-8 (Latin-1 "Grüße") live on as lone surrogates: the milter hands
    # header values to libmilter as UTF-8, so the tagged Subject must be text it can encode,
    # or applying it fails and the message is tempfailed on every attempt. The bytes themselves
    # are kept, as encoded words of the charset the message declares (tests/unit/antispam/
    # test_spamheaders_audit.py: other charsets, and none that fits)
    from gateway_milter.mime.headers import decode_words

    ctx = make_ctx(msg("x", "spammy", ctype="text/plain; charset=iso-8859-1"), scoring_policy(tmp_path))
    ctx.headers = [(n, "Gr\udcfc\udcdfe aus Bonn" if n == "Subject" else v) for n, v in ctx.headers]
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    (subject,) = [e.value for e in res.header_edits if e.op in ("add", "change") and e.name == "Subject"]
    assert subject.encode("ascii").startswith(b"[SPAM] =?iso-8859-1?B?")
    assert decode_words(subject) == "[SPAM] Grüße aus Bonn"


def test_it_does_not_tag_again_a_subject_tagged_inside_an_encoded_word(tmp_path: Path) -> None:
    ctx = make_ctx(msg("=?UTF-8?Q?[SPAM]_Gr=C3=BC=C3=9Fe?=", "spammy"), scoring_policy(tmp_path))
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    assert not [e for e in res.header_edits if e.name == "Subject"], res.header_edits


# -- the sender's X-Spam-* headers when the gateway writes none of its own ----------------------
def forged_delivered(tmp: Path, scoring: dict[str, Any]) -> list[tuple[str, str]]:
    rules = write_rules(tmp, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                  "scoring": {"layers": ["rules"], **scoring}})
    ctx = make_ctx(msg("Hello", headers=FORGED + "X-Spam-Report: forged\r\n"), pol)
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    edits = list(res.header_edits) if res is not None else []
    return [(n, v) for n, v in apply_like_an_mta(ctx.headers, edits) if n.lower().startswith("x-spam-")]


@pytest.mark.parametrize("scoring", [{"add_headers": False}, {"mode": "off"}], ids=["add_headers-off", "scoring-off"])
def test_it_removes_the_senders_spam_headers_when_it_adds_none(tmp_path: Path, scoring: dict[str, Any]) -> None:
    # a downstream Sieve rule on X-Spam-Flag: YES would have filed by the sender's say-so
    assert forged_delivered(tmp_path, scoring) == []


def test_remove_foreign_headers_off_keeps_them_when_it_adds_none(tmp_path: Path) -> None:
    kept = forged_delivered(tmp_path, {"add_headers": False, "remove_foreign_headers": False})
    assert [n for n, _ in kept] == ["X-Spam-Flag", "x-spam-flag", "X-Spam-Status", "X-SPAM-STATUS", "X-Spam-Level",
                                    "X-Spam-Report"]


def test_remove_foreign_headers_off_still_replaces_the_ones_it_writes(tmp_path: Path) -> None:
    delivered = forged_delivered(tmp_path, {"remove_foreign_headers": False})
    assert [n for n, _ in delivered] == ["X-Spam-Report", "X-Spam-Status", "X-Spam-Score", "X-Spam-Level"]
    assert all("score=50.0" not in v for n, v in delivered if n != "X-Spam-Report")
