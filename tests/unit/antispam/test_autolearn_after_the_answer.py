"""Autolearn in the milter waits for the transaction's answer: a clean message that a rule or
script after the scoring layer refused or discarded was learned as ham (into ``global`` too),
and a deferred one was learned before its retry was judged. Spam is learned when the message
was refused, held or discarded, ham when it was delivered whole. And the points of a rule with
``tflags learn`` (a learner's own rule) are left out of the score autolearn judges by, as
SpamAssassin's ``_get_autolearn_points`` leaves them out."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.learner import learner
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Action
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules
from tests.unit.spine.conftest import BASE_POLICY, make_gateway, run_to_eom

CLEAN = (b"From: a@sender.test\r\nTo: bob@example.com\r\nSubject: invoice 42\r\nMessage-ID: <m1@sender.test>\r\n"
         b"\r\nplease find the invoice for lunch tomorrow at noon\r\n")


def _learned(store: MemoryStore) -> tuple[int, int]:
    assert learner().flush(timeout=10.0)
    st = BayesClassifier(store).stats()
    return st["spam_learned"], st["ham_learned"]


def _gateway(tmp_path: Path, script: str | None = None) -> Any:
    d = write_rules(tmp_path, "body LOCAL_NEVER /zzzz-never/\nscore LOCAL_NEVER 1\n")
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"].update({"rules": {"include_default": False, "rule_dirs": [str(d)]},
                            "bayes": {}, "scoring": {"layers": ["rules", "bayes"], "fitted_scores": False}})
    if script:
        doc["scripts"] = [{"name": "adm", "position": "after",
                           "source": f'require ["reject"];\nif header :contains "Subject" "invoice" {{ {script} }}\n'}]
    return make_gateway(doc)[0]


@pytest.mark.parametrize("script, action", [('reject "not here";', Action.REJECT), ("discard;", Action.DISCARD)])
def test_a_clean_message_refused_after_scoring_is_not_learned_as_ham(tmp_path: Path, store: MemoryStore,
                                                                     script: str, action: Action) -> None:
    gw = _gateway(tmp_path, script)
    ctx, dec = run_to_eom(gw, CLEAN, helo="mx.sender.test", mail_from="a@sender.test")
    assert dec.action is action and ctx.runner.peek("scoring").fact("autolearn") == "ham"
    gw.finish(ctx, dec.action, dec.reply)
    assert _learned(store) == (0, 0)
    assert any(t.event == "autolearn" and f"the answer was {action.value}" in t.detail for t in ctx.trace)


def test_a_delivered_clean_message_is_learned_as_ham_and_a_deferred_one_is_not(tmp_path: Path,
                                                                               store: MemoryStore) -> None:
    gw = _gateway(tmp_path)
    ctx, dec = run_to_eom(gw, CLEAN, helo="mx.sender.test", mail_from="a@sender.test")
    assert dec.action is Action.ACCEPT
    gw.finish(ctx, Action.TEMPFAIL)  # (the front could not apply the changes: 4xx)
    assert _learned(store) == (0, 0)
    ctx, dec = run_to_eom(gw, CLEAN, helo="mx.sender.test", mail_from="a@sender.test")  # (the retry)
    gw.finish(ctx, dec.action)
    assert _learned(store) == (0, 1)


@pytest.mark.parametrize("tflags, learned", [("learn", "no"), ("noautolearn", "no"), ("", "spam")])
def test_a_learn_rules_points_are_not_in_the_autolearn_basis(tmp_path: Path, store: MemoryStore,
                                                             tflags: str, learned: str) -> None:
    rules = ("body LOCAL_PRIZE /prize/\nscore LOCAL_PRIZE 6\nheader LOCAL_WON Subject =~ /won/\nscore LOCAL_WON 3\n"
             "body LOCAL_L /lottery/\nscore LOCAL_L 6\n" + (f"tflags LOCAL_L {tflags}\n" if tflags else ""))
    doc = {"rules": {"include_default": False, "rule_dirs": [str(write_rules(tmp_path, rules))]},
           "scoring": {"layers": ["rules", "bayes"], "fitted_scores": False}}
    res = make_ctx(msg("you won", "lottery prize claim"), policy(doc)).layer("scoring")
    assert res.fact("score") == 15.0 and res.fact("autolearn") == learned
