"""A message with a scope the store cannot key (a 500-character recipient of a catch-all
domain, per_user on) is learned in its other scopes, and never costs the rest of its autolearn
batch."""

from __future__ import annotations

from gateway_milter.antispam.bayes import BayesClassifier, LearnItem, learn_item
from gateway_milter.antispam.learner import BackgroundLearner
from gateway_milter.antispam.saview import message_view
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg

LONG_USER = "user:" + "a" * 500 + "@example.com"  # "bayes2w:user:..." is longer than a key may be


def test_a_scope_the_store_cannot_key_is_left_out_of_the_learn_item() -> None:
    it = learn_item(message_view(make_ctx(msg("x", "y"))), True, [LONG_USER, "dom:example.com", "global"])
    assert it.scopes == ("dom:example.com", "global")
    store = MemoryStore()
    assert BayesClassifier(store).learn_many([it]) == [True]
    assert BayesClassifier(store).stats("dom:example.com")["spam_learned"] == 1


def test_one_message_that_cannot_be_learned_does_not_drop_the_rest_of_its_batch() -> None:
    store = MemoryStore()
    bl = BackgroundLearner(max_wait=60.0)
    good = [learn_item(message_view(make_ctx(msg(f"note {i}", f"ordinary words {i}"))), False) for i in range(5)]
    # made without learn_item's check: learning it raises (not a store error)
    it = learn_item(message_view(make_ctx(msg("x", "y"))), True)
    bad = LearnItem(it.keys, it.digest, True, (LONG_USER, "global"))
    for it in [*good[:2], bad, *good[2:]]:
        assert bl.submit(store, it)
    assert bl.flush(timeout=10.0)
    assert BayesClassifier(store).stats()["ham_learned"] == 5, f"learner stats: {bl.stats}"
    assert (bl.stats.learned, bl.stats.failed) == (5, 1)


def test_the_layer_reads_and_learns_only_scopes_the_store_can_key() -> None:
    from gateway_milter.layers.bayes import scopes_for
    from tests.unit.antispam.helpers import policy

    pol = policy({"bayes": {"per_user": True}})
    ctx = make_ctx(msg(), pol, rcpts=(LONG_USER[5:],))
    assert scopes_for(ctx, pol.settings_for("bayes", "example.com")) == ["dom:example.com", "global"]
