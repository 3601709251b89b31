"""Two learners of one message at once (the milter's autolearn, the Celery task, ``manage.py
bayes``, the web training): each message's changes are made only if the class it was learned
as is still the one read, so it is counted once and recorded as what it was learned as
(Redis: tests/integration/antispam/test_bayes_learning_races_redis.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway_milter.antispam.bayes import HAM_MASK, TOKEN, BayesClassifier, learn_item, message_digest, message_keys, scope_key
from gateway_milter.antispam.saview import SaMessage, message_view
from gateway_milter.store import StateStore
from gateway_milter.store.memory import MemoryStore
from gateway_milter.store.sqlitestore import SqliteStore
from tests.unit.antispam.helpers import make_ctx, msg


def spam() -> SaMessage:
    return message_view(make_ctx(msg("cheap pills", "buy cheap pills now")))


def racing(store: Any, other: Callable[[], None]) -> None:
    """Runs ``other`` (another process's learning) once, between this store's next read and the
    write after it."""
    read = store.counters
    state = {"first": True}

    def counters(requests: Any) -> Any:
        out = read(requests)
        if state["first"]:
            state["first"] = False
            other()
        return out
    store.counters = counters


def learned(store: StateStore, view: SaMessage) -> tuple[int, int, int]:
    (ns, nh, m), = store.counters([(scope_key("global"), ["#s", "#h", "m" + message_digest(view)])])
    return ns, nh, m


def tokens(store: StateStore, view: SaMessage) -> set[tuple[int, int]]:
    (vals,) = store.counters([(scope_key("global"), [TOKEN + k for k in message_keys(view).keys])])
    return {(v >> 32, v & HAM_MASK) for v in vals}


def two_learners_of_one_message_count_it_once(store: StateStore, other: StateStore) -> None:
    view = spam()
    racing(store, lambda: BayesClassifier(other, 1).learn(spam(), True))
    assert not BayesClassifier(store, 1).learn(view, True)  # the other one learned it: nothing left to do
    assert learned(store, view) == (1, 0, 1)  # learned once, as spam (1; ham is 2)
    assert tokens(store, view) == {(1, 0)}


def a_correction_raced_by_a_learner_of_the_same_class_is_made_once(store: StateStore, other: StateStore) -> None:
    bc = BayesClassifier(store, 1)
    view = spam()
    assert bc.learn(view, False)
    racing(store, lambda: BayesClassifier(other, 1).learn(spam(), True))
    assert not bc.learn(view, True)
    assert learned(store, view) == (1, 0, 1)
    assert tokens(store, view) == {(1, 0)}


def test_two_learners_of_one_message_count_it_once_in_memory() -> None:
    store = MemoryStore()
    two_learners_of_one_message_count_it_once(store, store)


def test_two_learners_of_one_message_count_it_once_in_sqlite(tmp_path: Path) -> None:
    two_learners_of_one_message_count_it_once(SqliteStore(tmp_path / "s.sqlite3"), SqliteStore(tmp_path / "s.sqlite3"))


def test_a_correction_raced_by_a_learner_of_the_same_class_is_made_once(tmp_path: Path) -> None:
    store = MemoryStore()
    a_correction_raced_by_a_learner_of_the_same_class_is_made_once(store, store)
    a_correction_raced_by_a_learner_of_the_same_class_is_made_once(SqliteStore(tmp_path / "s.sqlite3"),
                                                                  SqliteStore(tmp_path / "s.sqlite3"))


def test_a_raced_message_learned_again_leaves_no_wrapped_count() -> None:
    store = MemoryStore()
    view = spam()
    racing(store, lambda: BayesClassifier(store, 1).learn(spam(), True))
    bc = BayesClassifier(store, 1)
    bc.learn(view, True)
    assert not bc.learn(view, True)  # recorded as spam, not as the ham a double count read as
    assert tokens(store, view) == {(1, 0)}


def test_a_batch_retries_only_the_messages_another_learner_wrote() -> None:
    store = MemoryStore()
    views = [message_view(make_ctx(msg(f"note {i}", f"ordinary words number {i}"))) for i in range(4)]
    racing(store, lambda: BayesClassifier(store, 1).learn(message_view(make_ctx(msg("note 2", "ordinary words number 2"))),
                                                          False))
    got = BayesClassifier(store, 1).learn_many([learn_item(v, False) for v in views])
    assert got == [True, True, False, True]
    assert BayesClassifier(store).stats()["ham_learned"] == 4
    assert all(tokens(store, v) <= {(0, 1), (0, 2), (0, 3), (0, 4)} for v in views)
    assert {learned(store, v)[2] for v in views} == {2}
