#!/usr/bin/env python3
"""CPU of Bayes against the stores outside the process, as the milter uses them: the embedded
SQLite store (the default) and Redis (production). The 150 messages of bench/antispam_cpu.py
(4-6 KB, spam_2 and easy_ham in turn); Bayes trained on 200 spam and 200 ham of the others
first. Each message's tokens and keys are made before any timed call.

- classify: each message classified once a pass, in turn, the least CPU of --rounds passes per
  message; with the read cache (FieldCache, emptied at the start of each pass, so a message
  finds only what the ones before it in the pass read) and without it, whichever the store
  ships with (SQLite: with; Redis: without). On Redis also the read sent through redis-py's
  own pipeline (RedisStore's fallback without hiredis).
- learn: the 150 messages learned one by one (as autolearn did in the message's path) and in
  batches of the background learner's size (learner.MAX_BATCH), each into a fresh copy of the
  trained store; CPU a message, and on Redis the server's CPU a message (INFO cpu).

usage: .venv/bin/python bench/bayes_store.py [--store sqlite|redis] [--redis URL] [--rounds 5]
(on Redis the database's Bayes keys are deleted first)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway_milter.antispam import bayes  # noqa: E402
from gateway_milter.antispam.bayes import BayesClassifier, learn_item, message_keys  # noqa: E402
from gateway_milter.antispam.evaluate import make_context  # noqa: E402
from gateway_milter.antispam.learner import MAX_BATCH  # noqa: E402
from gateway_milter.antispam.saview import message_view  # noqa: E402
from gateway_milter.compiled import status as compiled_status  # noqa: E402
from gateway_milter.policy.snapshot import PolicySnapshot  # noqa: E402
from gateway_milter.store import StateStore, redisstore, set_default_store  # noqa: E402
from gateway_milter.store.redisstore import RedisStore  # noqa: E402
from gateway_milter.store.sqlitestore import SqliteStore  # noqa: E402
from tests.services import shared_path  # noqa: E402



def median(xs: list[float]) -> float:
    xs = sorted(xs)
    return round(xs[len(xs) // 2], 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    ap.add_argument("--redis", metavar="URL", default="redis://127.0.0.1:6379/15")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    base = shared_path("corpus", "spamassassin")
    if not base.is_dir():
        print(f"{base} not present", file=sys.stderr)
        return 2
    by_dir = [sorted((base / d).iterdir()) for d in ("spam_2", "easy_ham")]
    sized = [[p for p in files if 4000 <= os.path.getsize(p) <= 6000] for files in by_dir]
    pick = [p for pair in zip(*(s[:75] for s in sized), strict=False) for p in pair]
    chosen = set(pick)
    train = [p for files in by_dir for p in [q for q in files if q not in chosen][:200]]
    policy = PolicySnapshot.from_document({"settings": {"bayes": {"min_learned": 50, "autolearn": False}}})
    tmp = Path(tempfile.mkdtemp(prefix="bayes-store-"))

    def fresh(n: int) -> StateStore:
        if args.store == "redis":
            st = RedisStore(args.redis)
            for k in st.scan_keys("bayes", limit=10_000):
                st.delete(k)
            return st
        return SqliteStore(tmp / f"state{n}.sqlite3")

    # made once: three stores learn them
    train_items = [learn_item(message_view(make_context(p.read_bytes(), policy)), "spam" in p.parent.name) for p in train]

    def trained(n: int) -> StateStore:
        st = fresh(n)
        set_default_store(st)
        BayesClassifier(st, 50).learn_many(train_items)
        return st

    store = trained(0)
    views = [message_view(make_context(p.read_bytes(), policy)) for p in pick]
    labels = ["spam" in p.parent.name for p in pick]
    for v in views:
        message_keys(v)
    out: dict[str, Any] = {"store": args.store, "messages": len(views), "code": compiled_status(),
                           "rounds": args.rounds,
                           "fields_per_read_mean": round(sum(len(message_keys(v).keys) + len(message_keys(v).model) + 4
                                                             for v in views) / len(views), 1)}
    ways: dict[str, tuple[bool, Any]] = {"cached": (True, redisstore._pack), "uncached": (False, redisstore._pack)}
    if args.store == "redis":
        ways["uncached_pipeline"] = (False, None)
    best = {w: [float("inf")] * len(views) for w in ways}
    hit_rate = 0.0
    bc = BayesClassifier(store, 50)
    shipped = type(store).cache_reads  # type: ignore[attr-defined]
    for _ in range(args.rounds):
        for way, (cached, pack) in ways.items():
            type(store).cache_reads = cached  # type: ignore[attr-defined]
            redisstore._pack = pack
            cache = bayes.field_cache(store)
            if cache is not None:
                cache.clear()
                cache.ttl = 3600.0  # a pass is one stream of mail: nothing ages within it
                cache.hits = cache.misses = 0
            for i, v in enumerate(views):
                t = time.process_time()
                bc.classify(v)
                best[way][i] = min(best[way][i], (time.process_time() - t) * 1000)
            if cache is not None:
                hit_rate = cache.hits / max(1, cache.hits + cache.misses)
    type(store).cache_reads = shipped  # type: ignore[attr-defined]
    out["cache_as_shipped"] = shipped
    for way in ways:
        out[f"classify_{way}_cpu_ms_median"] = median(best[way])
    out["classify_cache_hit_rate"] = round(hit_rate, 3)

    def server_cpu(st: StateStore) -> float:
        if not isinstance(st, RedisStore):
            return 0.0
        info = st.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    out["batch"] = MAX_BATCH
    for name, batch in (("one_by_one", 1), ("batches", MAX_BATCH)):
        st = trained(1 if batch == 1 else 2)
        items = [learn_item(v, spam) for v, spam in zip(views, labels, strict=True)]
        lbc = BayesClassifier(st, 50)
        s0, t = server_cpu(st), time.process_time()
        for k in range(0, len(items), batch):
            lbc.learn_many(items[k:k + batch])
        out[f"learn_{name}_cpu_ms"] = round((time.process_time() - t) / len(items) * 1000, 3)
        if args.store == "redis":
            out[f"learn_{name}_server_cpu_ms"] = round((server_cpu(st) - s0) / len(items) * 1000, 3)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
