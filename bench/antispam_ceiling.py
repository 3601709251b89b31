"""How far standard text classifiers get on the evaluation's split, alone and added to the
gateway's own scores: a check of where the gap to the accuracy target lies (the data or the
classifier), not part of the product. Needs scikit-learn, which the gateway does not use:

    .venv/bin/pip install scikit-learn
    .venv/bin/python bench/antispam_eval.py --details /tmp/details.jsonl
    .venv/bin/python bench/antispam_ceiling.py --details /tmp/details.jsonl

Each classifier (TF-IDF of word 1-2-grams and of character 3-5-grams, logistic regression and
a linear SVM) learns the training part (the same split as antispam_eval.py) and scores the test
part (with ``--online N``, learning the test part too as it goes, every N messages in Date
order). Printed per classifier: spam caught at <= 0.1 % ham false positives (at most 2 of the
test ham above the threshold) alone, and the best of its decision value times w (w in WEIGHTS)
plus the gateway's score. That best weight is chosen on the test part itself: an upper bound,
not a figure a deployment could reach.
"""

from __future__ import annotations

import argparse
import email
import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway_milter.antispam.evaluate import is_training, load_corpus
from tests.services import shared_path

WEIGHTS = (0.25, 0.5, 1.0, 2.0, 3.0, 6.0)
TEXT_HEADERS = ("Subject", "From", "Reply-To", "To", "Content-Type", "X-Mailer", "Message-ID")


def text_of(raw: bytes) -> str:
    """Selected header fields and the decoded text parts (HTML without its tags), attachment names."""
    m = email.message_from_bytes(raw)
    out = [f"{k}: {m.get(k)}" for k in TEXT_HEADERS if m.get(k)]
    for part in m.walk():
        if part.get_content_maintype() == "text":
            try:
                payload = part.get_payload(decode=True) or b""
            except Exception:  # noqa: BLE001 - a broken part reads as empty here
                payload = b""
            try:
                t = payload.decode(part.get_content_charset() or "latin-1", "replace")
            except LookupError:
                t = payload.decode("latin-1")
            out.append(re.sub(r"<[^>]*>", " ", t) if part.get_content_subtype() == "html" else t)
        elif part.get_filename():
            out.append("attachment " + str(part.get_filename()))
    return "\n".join(out)


def caught_at_strict(scores: Any, labels: Any) -> float:
    ham = sorted(scores[~labels], reverse=True)
    return float((scores[labels] > ham[2]).mean() * 100)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--details", required=True, help="antispam_eval.py --details output (the gateway's scores)")
    ap.add_argument("--online", type=int, default=0, metavar="N",
                    help="learn the test messages too, in Date order: each classifier learns again every N of "
                         "them, with their true labels (compare with antispam_eval.py --online)")
    args = ap.parse_args()
    try:
        import numpy as np
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC
    except ImportError:
        print("needs scikit-learn: .venv/bin/pip install scikit-learn", file=sys.stderr)
        return 2
    base = shared_path("corpus", "spamassassin")
    if not base.is_dir():
        print(f"{base} not present", file=sys.stderr)
        return 2
    ours = {d["path"]: d["score"] for d in map(json.loads, Path(args.details).read_text().splitlines())}
    samples = load_corpus([base / "spam", base / "spam_2"], [base / "easy_ham", base / "easy_ham_2", base / "hard_ham"])
    train = [s for s in samples if is_training(s.path, 0.5)]
    test = sorted((s for s in samples if not is_training(s.path, 0.5) and s.path in ours), key=lambda s: (s.when, s.path))
    y_train = np.array([s.label == "spam" for s in train])
    y_test = np.array([s.label == "spam" for s in test])
    gateway = np.array([ours[s.path] for s in test])
    t_train, t_test = [text_of(s.raw) for s in train], [text_of(s.raw) for s in test]
    words = TfidfVectorizer(token_pattern=r"[A-Za-z0-9$!'_-]{2,}", ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                            max_features=300_000)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=3, sublinear_tf=True, max_features=300_000)
    xw, xwt = words.fit_transform(t_train), words.transform(t_test)
    xc, xct = chars.fit_transform(t_train), chars.transform(t_test)
    out: dict[str, Any] = {"train": len(train), "test": len(test),
                           "gateway_caught_at_max_0.1pct_fp_pct": round(caught_at_strict(gateway, y_test), 2)}
    for feats, x, xt in (("words", xw, xwt), ("chars", xc, xct),
                         ("words+chars", hstack([xw, xc]).tocsr(), hstack([xwt, xct]).tocsr())):
        for name, clf in (("logistic C=10", LogisticRegression(C=10, max_iter=3000, class_weight="balanced")),
                          ("logistic C=100", LogisticRegression(C=100, max_iter=3000, class_weight="balanced")),
                          ("linear SVM C=1", LinearSVC(C=1, class_weight="balanced"))):
            if args.online:  # (the vocabulary stays the training part's)
                from scipy.sparse import vstack

                parts = []
                for start in range(0, xt.shape[0], args.online):
                    seen = slice(0, start)
                    clf.fit(vstack([x, xt[seen]]), np.concatenate([y_train, y_test[seen]]))
                    parts.append(clf.decision_function(xt[start:start + args.online]))
                s = np.concatenate(parts)
            else:
                s = clf.fit(x, y_train).decision_function(xt)
            out[f"{feats}, {name}"] = {
                "alone": round(caught_at_strict(s, y_test), 2),
                "added_to_gateway_best": round(max(caught_at_strict(s * w + gateway, y_test) for w in WEIGHTS), 2)}
            print(f"  {feats}, {name}: {out[f'{feats}, {name}']}", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
