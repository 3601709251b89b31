"""``bayes evaluate`` (and the bench's evaluation) read a corpus as ``bayes train`` does: an
empty file or a file that is not mail (a README beside the messages) is no sample. Both were
learned or scored as spam or ham and moved the figures thresholds are tuned by."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway_milter.antispam.evaluate import load_corpus
from tests.unit.antispam.helpers import msg


def _corpus(tmp_path: Path) -> Path:
    for kind, n in (("spam", 5), ("easy_ham", 5)):
        d = tmp_path / kind
        d.mkdir()
        for i in range(n):
            (d / f"{i}.eml").write_bytes(msg(f"{kind} {i}", f"{kind} words number {i}"))
    (tmp_path / "spam" / "README.txt").write_bytes(b"These files are spam collected in 2026.\n")
    (tmp_path / "spam" / "empty.eml").write_bytes(b"")
    (tmp_path / "easy_ham" / "index.csv").write_bytes(b"id,subject\n1,hello\n")
    return tmp_path


def test_load_corpus_leaves_out_what_is_not_mail(tmp_path: Path) -> None:
    base = _corpus(tmp_path)
    skipped: list[str] = []
    samples = load_corpus([base / "spam"], [base / "easy_ham"], skipped=skipped)
    assert sorted((s.label, Path(s.path).name) for s in samples) == sorted(
        [("spam", f"{i}.eml") for i in range(5)] + [("ham", f"{i}.eml") for i in range(5)])
    assert sorted(Path(p).name for p in skipped) == ["README.txt", "empty.eml", "index.csv"]


@pytest.mark.django_db
def test_bayes_evaluate_counts_only_messages(tmp_path: Path) -> None:
    base = _corpus(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    call_command("bayes", "evaluate", "--corpus", str(base), "--min-learned", "1", stdout=out, stderr=err)
    rep = json.loads(out.getvalue())
    assert rep["train_spam"] + rep["test_spam"] == 5 and rep["train_ham"] + rep["test_ham"] == 5
    assert "3 empty file(s) or file(s) that are not mail skipped" in err.getvalue()
