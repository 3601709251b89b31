"""A bounce or an auto-reply to a spam trap is not learned by the trap layer
(docs/layers/spamtrap.md), but with the trap's ``action: score`` its 100 points made the
scoring layer's autolearn basis, and such a message with a few header and body points from
other layers was autolearned as spam after all. Autolearn now declines what the trap left
unlearned; an ordinary trap hit is still learned."""

from __future__ import annotations

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.learner import learner
from gateway_milter.pipeline.runner import LayerResult
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Symbol
from tests.unit.antispam.helpers import make_ctx, msg, policy

OFF = ("dnsbl", "rdns", "dkim", "dmarc", "arc", "fromscreen", "vbr", "rules")


@pytest.mark.parametrize(("rcpt", "sender", "extra", "learned", "reason"), [
    ("trap@example.com", "", "", 0, "spam trap: bounce not learned"),
    ("trap@example.com", "a@sender.test", "Auto-Submitted: auto-replied\r\n", 0, "spam trap: auto-reply not learned"),
    ("trap@example.com", "a@sender.test", "", 1, None),  # an ordinary trap hit: learned
])
def test_what_the_trap_leaves_unlearned_autolearn_leaves_too(store: MemoryStore, rcpt: str, sender: str,
                                                             extra: str, learned: int, reason: str | None) -> None:
    pol = policy({"spamtrap": {"addresses": ["trap@example.com"], "action": "score", "train_bayes": False},
                  "scoring": {"fitted_scores": False}, **{lid: {"mode": "off"} for lid in OFF}})
    ctx = make_ctx(msg("Undelivered Mail Returned to Sender", "your message could not be delivered", headers=extra),
                   pol, mail_from=sender, rcpts=(rcpt,))
    assert ctx.runner is not None
    # the header and body points a spammy bounce gets from other layers
    ctx.runner._results["spf"] = LayerResult("spf", {}, (Symbol("SPF_FAIL", 3.0, "", "spf"),))
    ctx.runner._results["uribl"] = LayerResult("uribl", {}, (Symbol("URIBL_BLACK", 3.0, "", "uribl"),))
    scored = ctx.layer("scoring")
    learner().flush()
    assert scored.fact("score") >= 100
    assert BayesClassifier(store).stats()["spam_learned"] == learned
    if reason:
        assert scored.fact("autolearn") == "no" and scored.fact("autolearn_reason") == reason
    else:
        assert scored.fact("autolearn") == "spam"
