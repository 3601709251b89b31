"""Autolearn off the message's path: the milter hands a message's :class:`LearnItem` (its
keys, made once for the classification, and its digest) to a background thread, which learns
what has arrived in batches, one read and one write to the token store a batch
(:meth:`BayesClassifier.learn_many`; the same store contents as learning one by one).

Before, the milter learned each message while the client waited: on the embedded SQLite store
20-23 ms CPU and about 25 ms wall a 4-6 KB message, on Redis 11-12 ms CPU in the client; in
batches of 32 now 5.2-5.7 and 1.9-2.2 ms a message (docs/decisions/0059-background-autolearn.md).
Learning is best effort, as it was: a store error is logged and the batch dropped, a full queue
drops the message (counted), and what is queued when the process dies unclean is not learned.
Nothing here touches the verdict.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from gateway_milter.antispam.bayes import BayesClassifier, LearnItem
from gateway_milter.store import StateStore, StoreError, batch_writes

log = logging.getLogger("bulwark.bayes")

MAX_BATCH = 32  # messages a batch: a batch holds the SQLite store's write lock about 0.2 s
MAX_WAIT_S = 1.0  # how long the first message of a batch waits for others (learning lags by this)
MAX_QUEUED = 2000  # a store that is down does not make the queue grow without end


@dataclass
class LearnerStats:
    queued: int = 0
    learned: int = 0  # messages a scope learned (not those learned before with that class)
    batches: int = 0
    dropped_full: int = 0
    failed: int = 0  # messages of batches the store refused


class BackgroundLearner:
    def __init__(self, max_batch: int = MAX_BATCH, max_wait: float = MAX_WAIT_S,
                 max_queued: int = MAX_QUEUED) -> None:
        self.max_batch, self.max_wait, self.max_queued = max_batch, max_wait, max_queued
        self.stats = LearnerStats()
        self._queue: deque[tuple[StateStore, LearnItem]] = deque()
        self._busy = 0  # items taken off the queue and not yet written
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._flushing = False  # a flush is waiting: batches go without waiting for company
        self._last_drop_log = 0.0

    def has_room(self) -> bool:
        """Whether a message submitted now would be queued (the queue is not full)."""
        with self._cond:
            return len(self._queue) < self.max_queued

    def submit(self, store: StateStore, item: LearnItem) -> bool:
        """Queue a message to be learned; False when the queue is full (it is not learned)."""
        with self._cond:
            if len(self._queue) >= self.max_queued:
                self.stats.dropped_full += 1
                now = time.monotonic()
                if now - self._last_drop_log > 60:
                    self._last_drop_log = now
                    log.warning("bayes autolearn queue full (%d): messages not learned (%d so far)",
                                self.max_queued, self.stats.dropped_full)
                return False
            self._queue.append((store, item))
            self.stats.queued += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="bayes-autolearn")
                self._thread.start()
            self._cond.notify_all()
            return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (or dropped); False on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()  # a batch waiting for company goes now
            while self._queue or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._flushing = True
                self._cond.wait(left)
            return True

    def _take(self) -> list[tuple[StateStore, LearnItem]]:
        with self._cond:
            while not self._queue:
                self._cond.wait()
            # the first message waits up to max_wait for others (a batch shares its writes)
            end = time.monotonic() + self.max_wait
            while len(self._queue) < self.max_batch and not self._flushing:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            n = min(len(self._queue), self.max_batch)
            batch = [self._queue.popleft() for _ in range(n)]
            self._busy = n
            return batch

    def _run(self) -> None:
        # a bulk writer nobody waits on: its writes may wait for another writer's lock longer
        # than the message path's short bound (store.batch_writes; this thread only)
        with batch_writes():
            while True:
                batch = self._take()
                try:
                    self._learn(batch)
                finally:
                    with self._cond:
                        self._busy = 0
                        if not self._queue:
                            self._flushing = False
                        self._cond.notify_all()

    def _learn(self, batch: list[tuple[StateStore, LearnItem]]) -> None:
        # one learn_many per store, in arrival order (set_default_store may have changed it)
        i = 0
        while i < len(batch):
            store = batch[i][0]
            j = i
            while j < len(batch) and batch[j][0] is store:
                j += 1
            items = [it for _s, it in batch[i:j]]
            try:
                learned = BayesClassifier(store).learn_many(items)
            except StoreError:
                self.stats.failed += len(items)
                log.warning("bayes autolearn failed for %d messages", len(items), exc_info=True)
            except Exception:
                # something in one message, not the store: the others are learned one by one
                log.warning("bayes autolearn batch of %d messages failed: learning them one by one",
                            len(items), exc_info=True)
                self.stats.batches += 1
                for it in items:
                    try:
                        self.stats.learned += sum(BayesClassifier(store).learn_many([it]))
                    except Exception:
                        self.stats.failed += 1
                        log.warning("bayes autolearn failed for a message", exc_info=True)
            else:
                self.stats.learned += sum(learned)
                self.stats.batches += 1
            i = j


_learner = BackgroundLearner()


def learner() -> BackgroundLearner:
    """The process's background learner."""
    return _learner
