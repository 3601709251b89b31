"""The subject tag is put on the Subject where it stands (changed in place, libmilter's
change-header call with a value), other copies of it deleted. Before, the Subject was deleted
and added again, so it moved to the end of the header: a copy learned from a mailbox ("mark as
spam", a junk folder given to ``bayes train``) taught Bayes header-order features, such as
``hseq:content-type>subject``, that no arriving message has."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.antispam.saview import message_view
from gateway_milter.antispam.tokenizer import header_order
from gateway_milter.transforms.spamheaders import spam_headers
from gateway_milter.verdict import Outcome
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules
from tests.unit.spine.conftest import apply_like_an_mta


def _ctx(tmp_path: Path, headers: str = "") -> object:
    rules = write_rules(tmp_path, "body LOCAL_SPAMMY /spammy/\nscore LOCAL_SPAMMY 6.0\n")
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(rules)]},
                  "scoring": {"layers": ["rules"], "fitted_scores": False, "subject_tag": "[SPAM]"}})
    return make_ctx(msg("Offer", "spammy", headers=headers), pol)


def test_the_tagged_subject_keeps_its_place(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    before = [n for n, _ in ctx.headers]  # type: ignore[attr-defined]
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    delivered = apply_like_an_mta(ctx.headers, list(res.header_edits))  # type: ignore[attr-defined]
    names = [n for n, _ in delivered]
    assert names[:len(before)] == before  # the gateway's own X-Spam-* come after, the Subject stays
    assert dict(delivered)["Subject"] == "[SPAM] Offer"
    # the header order Bayes reads is the one of the message that arrived
    tagged = make_ctx(b"".join(f"{n}: {v}\r\n".encode() for n, v in delivered) + b"\r\nspammy\r\n")
    assert header_order(message_view(tagged)) == header_order(message_view(ctx))  # type: ignore[arg-type]


def test_a_second_subject_goes_and_the_first_is_tagged(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, headers="Subject: second\r\n")
    res = spam_headers(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    edits = [(e.op, e.index) for e in res.header_edits if e.name == "Subject"]
    assert edits == [("delete", 2), ("change", 1)]
    delivered = apply_like_an_mta(ctx.headers, list(res.header_edits))  # type: ignore[attr-defined]
    assert [v for n, v in delivered if n == "Subject"] == ["[SPAM] Offer"]
    ctx.apply_delivery_changes(list(res.header_edits), None)  # type: ignore[attr-defined]
    assert ctx.headers == delivered  # type: ignore[attr-defined]
