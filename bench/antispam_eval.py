"""Anti-spam evaluation on the SpamAssassin public corpus (../shared/corpus/spamassassin).

Usage: .venv/bin/python bench/antispam_eval.py [--limit N] [--online] [--train 0.5] [--sa-scores]
Prints spam caught / ham false positives at the default thresholds, (1-AUC)% and CPU per message.
       .venv/bin/python bench/antispam_eval.py --fit-scores gateway_milter/antispam/scores/50_bulwark_fitted.cf
re-fits the scores on the training part (the same split) and writes the score file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway_milter.antispam.evaluate import Sample, evaluate, fit_scores, load_corpus
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
    ap.add_argument("--sa-scores", action="store_true",
                    help="score with SpamAssassin's own scores instead of the fitted ones (the default)")
    ap.add_argument("--score-file", default="", help="evaluate with this fitted score file")
    ap.add_argument("--fit-scores", default="", help="fit the scores on the training part and write this file")
    ap.add_argument("--max-fp", type=float, default=None, help="fit: out-of-fold ham false-positive rate at 5 points")
    ap.add_argument("--bayes-input", choices=("logodds", "bands"), default="logodds",
                    help="fit: Bayes as its clipped log-odds (default) or as band indicators")
    ap.add_argument("--logodds-clip", type=float, default=None, help="fit: clip of the Bayes log-odds")
    ap.add_argument("--fit-prior", choices=("spamassassin", "zero"), default="spamassassin",
                    help="fit: what the L2 term pulls each weight toward (SpamAssassin's sign rule kept either way)")
    ap.add_argument("--no-token-model", action="store_true",
                    help="fit: without the token model's logit (writes the counts-only score file's kind)")
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

    if args.fit_scores:
        return write_fitted(samples, args, progress)
    rep = evaluate(samples, MemoryStore(), fitted_scores=not args.sa_scores or bool(args.score_file), score_file=args.score_file,
                   train_fraction=args.train, online=args.online,
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


def write_fitted(samples: list[Sample], args: argparse.Namespace, progress: Callable[[int, int], None]) -> int:
    from gateway_milter.antispam.scorefit import write_score_file

    kw: dict[str, float] = {} if args.max_fp is None else {"max_fp": args.max_fp}
    if args.logodds_clip is not None:
        kw["logodds_clip"] = args.logodds_clip
    res = fit_scores(samples, train_fraction=args.train, min_learned=args.min_learned, progress=progress,
                     bayes_input=args.bayes_input, prior=args.fit_prior, token_model=not args.no_token_model, **kw)
    header = (f"Fitted scores (gateway_milter/antispam/scorefit.py), generated {time.strftime('%Y-%m-%d')} by\n"
              f"  bench/antispam_eval.py --fit-scores (or manage.py bayes fit-scores)\n"
              f"from the training part ({args.train:g}) of the SpamAssassin public corpus only.\n"
              f"Fit: {json.dumps(res.info, sort_keys=True)}\n"
              f"Columns: score NAME set0 set1 set2 set3 (0: no Bayes, 2: Bayes; no network tests).")
    write_score_file(Path(args.fit_scores), res.without_bayes, res.with_bayes, header)
    print(json.dumps(res.info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
