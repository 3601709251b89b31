"""The classification's read cache of a store outside the process (antispam/bayes.py
FieldCache): the same classifications as reading the store; this process's learning seen at
once, another process's within two generations; no round trip when every field is at hand."""

from __future__ import annotations

import random
from pathlib import Path

from gateway_milter.antispam import bayes
from gateway_milter.antispam.bayes import BayesClassifier, FieldCache, field_cache
from gateway_milter.antispam.saview import message_view
from gateway_milter.store.memory import MemoryStore
from gateway_milter.store.sqlitestore import SqliteStore
from tests.unit.antispam.helpers import Clock, make_ctx, msg
from tests.unit.antispam.test_bayes import HAM_WORDS, SPAM_WORDS, sample


class Counting(SqliteStore):
    calls = 0

    def counters(self, requests):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super().counters(requests)


def train(bc: BayesClassifier, n: int, seed: int) -> None:
    rnd = random.Random(seed)
    for i in range(n):
        bc.learn(message_view(make_ctx(sample(SPAM_WORDS, i, rnd))), True)
        bc.learn(message_view(make_ctx(sample(HAM_WORDS, i, rnd))), False)


def test_cached_classifications_equal_the_stores_own_and_see_this_process_learn(tmp_path: Path) -> None:
    store = Counting(tmp_path / "s.sqlite3")
    assert field_cache(store) is not None and field_cache(MemoryStore()) is None
    bc = BayesClassifier(store, 10)
    train(bc, 12, 1)
    rnd = random.Random(2)
    views = [message_view(make_ctx(sample(SPAM_WORDS if i % 2 else HAM_WORDS, 100 + i, rnd))) for i in range(16)]

    def plain() -> list[bayes.Classification]:
        type(store).cache_reads = False
        try:
            return [bc.classify(v, explain=True) for v in views]
        finally:
            del type(store).cache_reads  # back to SqliteStore's: True

    want = plain()
    assert [bc.classify(v, explain=True) for v in views] == want
    cache = field_cache(store)
    assert cache is not None and cache.hits > 0
    # every field at hand: no round trip at all
    before = store.calls
    assert bc.classify(views[3], explain=True) == want[3] and store.calls == before
    # learning in this process takes its fields out at once: the next classification is the store's
    bc.learn(views[0], True)
    bc.learn(views[5], False)
    assert [bc.classify(v, explain=True) for v in views] == plain()
    bc.forget(views[0])
    assert [bc.classify(v, explain=True) for v in views] == plain()
    assert bc.wipe("global") and bc.classify(views[1]).probability is None


def test_another_processes_learning_is_seen_within_two_generations(tmp_path: Path) -> None:
    here, there = SqliteStore(tmp_path / "s.sqlite3"), SqliteStore(tmp_path / "s.sqlite3")  # two processes' stores
    clock = Clock(1000.0)
    bayes._caches[here] = FieldCache(ttl=2.5, clock=clock)
    bc_here, bc_there = BayesClassifier(here, 10), BayesClassifier(there, 10)
    train(bc_there, 12, 3)
    view = message_view(make_ctx(sample(SPAM_WORDS, 500, random.Random(4))))
    first = bc_here.classify(view)
    train(bc_there, 6, 5)  # the other process learns more
    fresh = BayesClassifier(there, 10).classify(view)
    assert fresh != first
    clock.t += 2.0
    assert bc_here.classify(view) == first  # within the generation: the cached fields
    clock.t += 1.0  # aged once: the old generation still answers
    assert bc_here.classify(view) == first
    clock.t += 5.1  # both generations older than two ttl: read again
    assert bc_here.classify(view) == fresh


def test_the_cache_is_bounded() -> None:
    clock = Clock(1000.0)
    cache = FieldCache(ttl=100.0, cap=50, clock=clock)
    store = MemoryStore()
    store.add_counters([("k", {f"f{i}": i + 1 for i in range(200)})])
    assert cache.read(store, [("k", [f"f{i}" for i in range(40)])]) == [[i + 1 for i in range(40)]]
    assert cache.read(store, [("k", [f"f{i}" for i in range(40, 100)])])[0][0] == 41
    cache.read(store, [("x", ["a"])])  # the full generation is aged on the next read
    assert cache.size <= 50 and sum(len(d) for d in cache.cur.values()) <= 50
    assert sum(len(d) for d in cache.old.values()) <= 101


def test_what_this_process_learns_while_a_classification_reads_is_not_kept_stale(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    bc = BayesClassifier(store, 1)
    bc.learn(message_view(make_ctx(msg("hello", "meeting agenda for tomorrow"))), False)
    bc.learn(message_view(make_ctx(msg("win", "cheap pills casino bonus"))), True)
    spam = message_view(make_ctx(msg("cheap pills", "buy cheap pills casino now")))
    read = store.counters
    state = {"first": True}

    def counters(requests):  # type: ignore[no-untyped-def]  # the background learner learns meanwhile
        out = read(requests)
        if state["first"]:
            state["first"] = False
            bc.learn(spam, True)  # written after the read, taken out of a cache that lacks it yet
        return out
    store.counters = counters  # type: ignore[method-assign]
    bc.classify(spam)
    cached = bc.classify(spam)  # within the cache's ttl
    field_cache(store).clear()  # type: ignore[union-attr]
    fresh = bc.classify(spam)
    assert (cached.nspam, cached.probability) == (fresh.nspam, fresh.probability)
