"""The background autolearner: batches written in one read and one write, to the same store
contents as learning one by one; never in the message's path; best effort when full or when
the store fails."""

from __future__ import annotations

import random
from typing import Any

from gateway_milter.antispam.bayes import BayesClassifier, learn_item
from gateway_milter.antispam.learner import BackgroundLearner, learner
from gateway_milter.antispam.saview import message_view
from gateway_milter.store import StoreError
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import hashes_as_read, make_ctx, msg, policy
from tests.unit.antispam.test_bayes import HAM_WORDS, SPAM_WORDS, sample


def items(n: int, seed: int = 3) -> list[Any]:
    rnd = random.Random(seed)
    return [learn_item(message_view(make_ctx(sample(SPAM_WORDS if i % 2 else HAM_WORDS, i, rnd))), bool(i % 2))
            for i in range(n)]


def test_it_learns_a_batch_after_the_message_has_gone_on() -> None:
    todo = items(12)
    one_by_one = MemoryStore()
    for it in todo:
        BayesClassifier(one_by_one).learn_many([it])
    store = MemoryStore()
    bl = BackgroundLearner(max_wait=60.0)  # the batch would wait a minute for company
    for it in todo:
        assert bl.submit(store, it)
    assert store.round_trips == 0  # nothing written while the messages were handled
    assert bl.flush(timeout=10.0)  # a flush sends the batch at once
    assert store.round_trips == 2 and (bl.stats.batches, bl.stats.learned, bl.stats.queued) == (1, 12, 12)
    assert hashes_as_read(store) == hashes_as_read(one_by_one)


def test_it_cuts_batches_at_max_batch_and_keeps_each_store_apart() -> None:
    a, b = MemoryStore(), MemoryStore()
    bl = BackgroundLearner(max_batch=4, max_wait=60.0)
    todo = items(10)
    for i, it in enumerate(todo):
        bl.submit(a if i < 7 else b, it)
    assert bl.flush(timeout=10.0)
    assert bl.stats.learned == 10 and bl.stats.batches == 4  # [a a a a] [a a a | b] [b b]
    assert BayesClassifier(a).stats()["spam_learned"] + BayesClassifier(a).stats()["ham_learned"] == 7
    assert BayesClassifier(b).stats()["spam_learned"] + BayesClassifier(b).stats()["ham_learned"] == 3


def test_it_drops_what_does_not_fit_and_survives_a_failing_store() -> None:
    class Down(MemoryStore):
        def counters(self, requests: Any) -> Any:
            raise StoreError("down")

    bl = BackgroundLearner(max_queued=2, max_wait=60.0)
    todo = items(3)
    assert bl.submit(Down(), todo[0]) and bl.submit(Down(), todo[1])
    assert not bl.submit(Down(), todo[2]) and bl.stats.dropped_full == 1
    assert bl.flush(timeout=10.0)
    assert bl.stats.failed == 2 and bl.stats.learned == 0
    store = MemoryStore()
    assert bl.submit(store, todo[2]) and bl.flush(timeout=10.0)  # the thread lives on
    assert bl.stats.learned == 1


def test_the_scoring_layer_autolearns_through_the_background_learner(store: MemoryStore) -> None:
    pol = policy({"scoring": {"layers": ["bayes"]}, "bayes": {"min_learned": 1, "autolearn_ham": 0.5}})
    ctx = make_ctx(msg("lunch", "the agenda for the project review tomorrow"), pol)
    assert ctx.layer("scoring").fact("autolearn") == "ham"
    assert learner().flush(timeout=10.0)
    st = BayesClassifier(store).stats()
    assert (st["spam_learned"], st["ham_learned"]) == (0, 1) and st["token_model_ham"] == 1
    # in scan mode, never
    ctx = make_ctx(msg("lunch 2", "the agenda again"), pol, scan_mode=True)
    assert ctx.layer("scoring").fact("autolearn") == "disabled"
    assert learner().flush(timeout=10.0) and BayesClassifier(store).stats()["ham_learned"] == 1
