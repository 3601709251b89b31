#!/usr/bin/env python3
"""CPU of a Bayes classification read from a real Redis, as the milter does in production: the
150 messages of bench/antispam_cpu.py (4-6 KB, spam_2 and easy_ham in turn), Bayes trained on
200 spam and 200 ham of the others first. Each message's tokens and keys are made before the
timed call, so the figure is the read (one round trip: the counts and the token model's weights
of every scope) and the combining. Both ways of sending the read are timed in turns: the
commands packed by hiredis (RedisStore's default) and redis-py's own pipeline (its fallback
without hiredis). A message's CPU is the least of --rounds passes.

usage: .venv/bin/python bench/bayes_redis.py --redis redis://127.0.0.1:6379/15 [--rounds 5]
(the Redis database's Bayes keys are deleted first)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway_milter.antispam.bayes import BayesClassifier, message_keys  # noqa: E402
from gateway_milter.antispam.evaluate import make_context  # noqa: E402
from gateway_milter.antispam.saview import message_view  # noqa: E402
from gateway_milter.compiled import status as compiled_status  # noqa: E402
from gateway_milter.policy.snapshot import PolicySnapshot  # noqa: E402
from gateway_milter.store import redisstore, set_default_store  # noqa: E402
from gateway_milter.store.redisstore import RedisStore  # noqa: E402
from tests.services import shared_path  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--redis", required=True, metavar="URL")
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
    store = RedisStore(args.redis)
    for k in store.scan_keys("bayes", limit=10_000):
        store.delete(k)
    set_default_store(store)
    policy = PolicySnapshot.from_document({"settings": {"bayes": {"min_learned": 50, "autolearn": False}}})
    bc = BayesClassifier(store, 50)
    for p in train:
        bc.learn(message_view(make_context(p.read_bytes(), policy)), "spam" in p.parent.name)
    views = [message_view(make_context(p.read_bytes(), policy)) for p in pick]
    fields = [len(message_keys(v).keys) + len(message_keys(v).model) + 4 for v in views]
    packer = redisstore._pack
    ways = {"hiredis_packed": packer, "pipeline": None}
    best = {w: [float("inf")] * len(views) for w in ways}
    for _ in range(args.rounds):
        for way, pack in ways.items():
            redisstore._pack = pack
            for i, v in enumerate(views):
                t = time.process_time()
                bc.classify(v)
                best[way][i] = min(best[way][i], (time.process_time() - t) * 1000)
    redisstore._pack = packer
    out: dict[str, object] = {"messages": len(views), "fields_per_read_mean": round(sum(fields) / len(fields), 1),
                              "code": compiled_status(), "rounds": args.rounds}
    for way, cpu in best.items():
        cpu.sort()
        out[f"{way}_cpu_ms_median"] = round(cpu[len(cpu) // 2], 3)
        out[f"{way}_cpu_ms_mean"] = round(sum(cpu) / len(cpu), 3)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
