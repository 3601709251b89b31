"""CPU per message of the content path (rules + Bayes + scoring through the real layers) on
corpus messages of 4-6 KB (spam_2 and easy_ham in turn), Bayes trained on 200 spam and 200 ham
first (MemoryStore: the store's network time is not CPU).

Usage: .venv/bin/python bench/antispam_cpu.py [--n 150] [--no-rules] [--min-size 4000 --max-size 6000]
[--reference] [--no-hyperscan] [--repeat 5] [--only spam|ham]

--reference: every rule's expression over the whole text, no laziness or prefilter (the
equivalence tests' reference path); --no-hyperscan: the Python prefilters (and RE2) only.
Otherwise the Hyperscan databases are loaded from, or first built into, GATEWAY_RULES_CACHE_DIR,
and the build is not counted. A message's CPU is the least of --repeat passes; --only times one
class alone."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.evaluate import make_context
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.rules import RulesSettings, engine_from_settings
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store import set_default_store
from gateway_milter.store.memory import MemoryStore
from tests.services import shared_path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--no-rules", action="store_true")
    ap.add_argument("--skip", default="", help="comma-separated rules.skip_rules")
    ap.add_argument("--min-size", type=int, default=4000)
    ap.add_argument("--max-size", type=int, default=6000)
    ap.add_argument("--reference", action="store_true", help="run the rules engine's reference path")
    ap.add_argument("--no-hyperscan", action="store_true", help="Python prefilters only")
    ap.add_argument("--repeat", type=int, default=5, help="passes; a message's CPU is its least")
    ap.add_argument("--only", choices=("spam", "ham"), help="time one class alone (Bayes still learns both)")
    args = ap.parse_args()
    base = shared_path("corpus", "spamassassin")
    if not base.is_dir():
        print(f"{base} not present", file=sys.stderr)
        return 2
    # half spam, half ham, in turn; Bayes learns 200 of each of the others (min_learned is 50 of
    # each, so every message goes through the whole classifier)
    by_dir = [sorted((base / d).iterdir()) for d in ("spam_2", "easy_ham")]
    sized = [[p for p in files if args.min_size <= os.path.getsize(p) <= args.max_size] for files in by_dir]
    if args.only:  # one class alone, as many messages
        sized = [sized[0] if args.only == "spam" else sized[1]]
        pick = sized[0][: args.n]
    else:
        pick = [p for pair in zip(*(s[: (args.n + 1) // 2] for s in sized), strict=False) for p in pair][: args.n]
    chosen = set(pick)
    train = [p for files in by_dir for p in [q for q in files if q not in chosen][:200]]
    store = MemoryStore()
    set_default_store(store)
    layers = ["bayes"] if args.no_rules else ["rules", "bayes"]
    skip = [x for x in args.skip.split(",") if x]
    policy = PolicySnapshot.from_document({"settings": {"scoring": {"layers": layers}, "rules": {"skip_rules": skip},
                                                        "bayes": {"min_learned": 50, "autolearn": False}}})
    bc = BayesClassifier(store, 50)
    for p in train:
        bc.learn(message_view(make_context(p.read_bytes(), policy)), "spam" in p.parent.name)
    if args.no_hyperscan:
        os.environ["GATEWAY_RULES_HYPERSCAN"] = "0"
    t0 = time.process_time()
    hyperscan = False
    if not args.no_rules:
        engine = engine_from_settings(RulesSettings(skip_rules=tuple(skip)))
        load_s = time.process_time() - t0
        hyperscan = engine.hyperscan(None) is not None
        if args.reference:
            plain_run = engine.run
            engine.run = lambda m, extra=None, lazy=True: plain_run(m, extra, lazy=False)  # type: ignore[method-assign]
    else:
        load_s = time.process_time() - t0
    raws = [p.read_bytes() for p in pick]
    for raw in raws[:10]:  # warm caches
        make_context(raw, policy).layer("scoring")
    # each message's CPU is the least of --repeat passes (a fresh context each time: all the
    # work is done again): interrupts and a neighbour's load only ever add time
    best = [float("inf")] * len(raws)
    for _ in range(args.repeat):
        for i, raw in enumerate(raws):
            ctx = make_context(raw, policy)
            t = time.process_time()
            ctx.layer("scoring")
            best[i] = min(best[i], (time.process_time() - t) * 1000)
    cpu = sorted(best)
    classified = sum(bc.classify(message_view(make_context(raw, policy))).probability is not None for raw in raws)
    print(json.dumps({"messages": len(cpu), "layers": layers, "rule_load_cpu_s": round(load_s, 2),
                      "hyperscan": hyperscan, "reference": args.reference, "repeat": args.repeat,
                      "sizes": [args.min_size, args.max_size],
                      "spam": sum("spam" in p.parent.name for p in pick), "ham": sum("ham" in p.parent.name for p in pick),
                      "bayes_classified": classified,
                      "cpu_ms_median": round(cpu[len(cpu) // 2], 2), "cpu_ms_p90": round(cpu[int(len(cpu) * .9)], 2),
                      "cpu_ms_p95": round(cpu[int(len(cpu) * .95)], 2),
                      "cpu_ms_mean": round(sum(cpu) / len(cpu), 2)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
