"""Anti-spam evaluation on the SpamAssassin public corpus (../shared/corpus/spamassassin).

Usage: .venv/bin/python bench/antispam_eval.py [--limit N] [--online] [--train 0.5]
Prints spam caught / ham false positives at the default thresholds, (1-AUC)% and CPU per message.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway_milter.antispam.evaluate import evaluate, load_corpus
from gateway_milter.store.memory import MemoryStore
from tests.services import shared_path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None, help="messages per class")
    ap.add_argument("--train", type=float, default=0.5)
    ap.add_argument("--online", action="store_true")
    ap.add_argument("--min-learned", type=int, default=200)
    ap.add_argument("--layers", default="rules,bayes")
    ap.add_argument("--details", default="", help="write per-message scores (JSON lines) to this file")
    ap.add_argument("--osb-window", type=int, default=None, help="tokenizer word-pair window (0: words only)")
    args = ap.parse_args()
    base = shared_path("corpus", "spamassassin")
    if not base.is_dir():
        print(f"{base} not present", file=sys.stderr)
        return 2
    if args.osb_window is not None:
        from gateway_milter.antispam import tokenizer

        tokenizer.OSB_WINDOW = args.osb_window
    samples = load_corpus([base / "spam", base / "spam_2"], [base / "easy_ham", base / "easy_ham_2", base / "hard_ham"],
                          args.limit)
    t0 = time.time()
    last = [0.0]

    def progress(i: int, n: int) -> None:
        if time.time() - last[0] > 10:
            last[0] = time.time()
            print(f"  {i}/{n}", file=sys.stderr, flush=True)

    rep = evaluate(samples, MemoryStore(), train_fraction=args.train, online=args.online,
                   min_learned=args.min_learned, layers=tuple(args.layers.split(",")), progress=progress)
    if args.details:
        with open(args.details, "w") as f:
            for d in rep.details:
                f.write(json.dumps(d) + "\n")
    out = rep.summary(5.0, 12.0)
    out["online"] = args.online
    out["wall_s"] = round(time.time() - t0, 1)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
