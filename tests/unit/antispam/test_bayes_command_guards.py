"""Guards of the ``bayes`` command against a slip of the hand:

- ``forget --wipe`` without ``--scope`` wiped ``global``, the scope every tenant reads, without
  a word (the page asks first, the API answers 400): it now asks for the scope;
- ``evaluate`` and ``fit-scores`` took ``--train 1.5`` (no test part: all zeros), ``-1`` (nothing
  learned, yet "100 %"), ``--limit 0`` (no limit) and ``--min-learned 0`` (a traceback);
- ``restore`` that failed before writing anything advised ``--replace``, which would overwrite
  the data the run without it protected;
- the progress bar's last line is written once when the output is not a terminal."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.store import StoreError
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg
from webadmin.management.commands.bayes import Progress


def _quiet(*args: str) -> str:
    out = io.StringIO()
    call_command("bayes", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_forget_wipe_names_its_scope(tmp_path: Path, store: MemoryStore) -> None:
    (tmp_path / "s.eml").write_bytes(msg("cheap pills", "buy now"))
    _quiet("train", "--spam", str(tmp_path / "s.eml"))
    with pytest.raises(CommandError, match="--scope"):
        _quiet("forget", "--wipe")
    assert BayesClassifier(store).stats("global")["spam_learned"] == 1  # (nothing wiped)
    assert "wiped" in _quiet("forget", "--wipe", "--scope", "global")
    assert BayesClassifier(store).stats("global")["spam_learned"] == 0


@pytest.mark.django_db
@pytest.mark.parametrize("args, says", [
    (["--train", "1.5"], "--train"), (["--train", "-1"], "--train"), (["--train", "nan"], "--train"),
    (["--train", "0"], "--train"), (["--limit", "0"], "--limit"), (["--limit", "-1"], "--limit"),
    (["--min-learned", "0"], "--min-learned")])
@pytest.mark.parametrize("action", ["evaluate", "fit-scores"])
def test_evaluate_refuses_nonsense_arguments(tmp_path: Path, action: str, args: list[str], says: str) -> None:
    with pytest.raises(CommandError, match=says):
        _quiet(action, "--corpus", str(tmp_path), *args)


@pytest.mark.django_db
def test_a_restore_that_could_not_read_the_store_says_nothing_changed(tmp_path: Path, store: MemoryStore,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "s.eml").write_bytes(msg("cheap pills", "buy now"))
    _quiet("train", "--spam", str(tmp_path / "s.eml"))
    backup = tmp_path / "b.jsonl.gz"
    _quiet("backup", str(backup))

    def down(*a: Any, **k: Any) -> int:
        raise StoreError("connection refused")

    monkeypatch.setattr(MemoryStore, "counter_fields", down)
    with pytest.raises(CommandError) as e:
        _quiet("restore", str(backup))
    assert "nothing was changed" in str(e.value) and "--replace" not in str(e.value)


def test_the_last_progress_line_is_written_once() -> None:
    out = io.StringIO()
    bar = Progress(3, "forgetting", out)
    for i in (1, 2, 3):
        bar.update(i)
    bar.update(3)
    assert out.getvalue().count("3/3") == 1
