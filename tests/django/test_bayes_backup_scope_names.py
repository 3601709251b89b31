"""``bayes backup --scope`` and ``bayes restore --scope`` name a scope as train, stats and forget
do: ``dom:Example.ORG`` and an alias domain are the scope the milter writes, not "nothing
learned in scope(s) dom:Example.ORG"."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import msg

pytestmark = pytest.mark.django_db


def test_backup_and_restore_read_scope_names_as_train_does(tmp_path: Path, store: MemoryStore) -> None:
    pol = tmp_path / "p.yaml"
    pol.write_text(yaml.safe_dump({"domains": [{"name": "example.org", "aliases": ["example.net"]}]}))
    call_command("policy", "import", str(pol), stdout=io.StringIO())
    spam = tmp_path / "spam"
    spam.mkdir()
    for i in range(3):
        (spam / f"{i}.eml").write_bytes(msg(f"win {i}", f"lottery prize number {i}"))
    call_command("bayes", "train", "--spam", str(spam), "--scope", "dom:example.org", stdout=io.StringIO(),
                 stderr=io.StringIO())
    out = tmp_path / "b.gz"
    call_command("bayes", "backup", str(out), "--scope", "dom:Example.ORG", stdout=io.StringIO(), stderr=io.StringIO())
    with gzip.open(out, "rt") as fh:
        text = fh.read()
    assert "dom:example.org" in text and "dom:Example.ORG" not in text
    said = io.StringIO()
    call_command("bayes", "restore", str(out), "--scope", "dom:EXAMPLE.net", "--replace", stdout=said,
                 stderr=io.StringIO())  # (the alias: its main domain's scope)
    assert said.getvalue().startswith("restored dom:example.org: "), said.getvalue()
    st = io.StringIO()
    call_command("bayes", "stats", "--scope", "dom:example.org", stdout=st)
    assert json.loads(st.getvalue())["spam_learned"] == 3


def test_backup_names_a_scope_that_holds_only_its_token_model(tmp_path: Path, store: MemoryStore) -> None:
    """After ``bayes forget`` of every message a scope learned, its counts are gone and the token
    model's weights stay: ``--scope`` still backs it up (before: "nothing learned")."""
    spam, ham = tmp_path / "spam", tmp_path / "ham"
    spam.mkdir()
    ham.mkdir()
    for i in range(3):
        (spam / f"{i}.eml").write_bytes(msg(f"win {i}", f"lottery prize number {i}"))
        (ham / f"{i}.eml").write_bytes(msg(f"minutes {i}", f"the meeting notes of week {i}"))
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("bayes", "train", "--spam", str(spam), "--ham", str(ham), **quiet)
    call_command("bayes", "forget", "--spam", str(spam), "--ham", str(ham), **quiet)
    st = io.StringIO()
    call_command("bayes", "stats", stdout=st)
    stats = json.loads(st.getvalue())
    assert stats["fields"] == 0 and stats["token_weights"] > 0
    out = tmp_path / "b.gz"
    call_command("bayes", "backup", str(out), "--scope", "global", **quiet)
    with gzip.open(out, "rt") as fh:
        assert '"weights"' in fh.read()
