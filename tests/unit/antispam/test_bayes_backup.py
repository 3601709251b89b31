"""Bayes backup and restore (antispam/bayesbackup.py): a restored store classifies as the
original did, to the bit, from the embedded store into another kind; a damaged, cut or foreign
file is refused before anything is written; a scope holding data is replaced only when asked."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from gateway_milter.antispam.bayes import BayesClassifier, scope_key
from gateway_milter.antispam.bayesbackup import CHUNK, BackupError, backup, check, learned_scopes, restore
from gateway_milter.antispam.saview import message_view
from gateway_milter.store.memory import MemoryStore
from gateway_milter.store.sqlitestore import SqliteStore
from tests.unit.antispam.helpers import make_ctx
from tests.unit.antispam.test_bayes import HAM_WORDS, SPAM_WORDS, sample

SCOPES = ("global", "dom:a.example")


def learned(store: object, n: int = 12) -> BayesClassifier:
    bc = BayesClassifier(store, 5)  # type: ignore[arg-type]
    rnd = random.Random(3)
    for i in range(n):
        bc.learn(message_view(make_ctx(sample(SPAM_WORDS, i, rnd))), True, SCOPES)
        bc.learn(message_view(make_ctx(sample(HAM_WORDS, i, rnd))), False, SCOPES[:1])
    return bc


def probes() -> list[object]:
    rnd = random.Random(9)
    return [message_view(make_ctx(sample(SPAM_WORDS if i % 2 else HAM_WORDS, 50 + i, rnd))) for i in range(8)]


def results(bc: BayesClassifier, scopes: tuple[str, ...] = ("global",)) -> list[tuple[object, ...]]:
    out = []
    for v in probes():
        c = bc.classify(v, scopes)  # type: ignore[arg-type]
        out.append((c.probability, c.logodds, c.scope, c.nspam, c.nham, c.sender_spam, c.sender_ham))
    return out


@pytest.fixture
def source(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "src.sqlite3")
    learned(store)
    return store


def test_a_restore_into_another_store_classifies_to_the_bit(source: SqliteStore, tmp_path: Path) -> None:
    f = tmp_path / "bayes.jsonl.gz"
    seen: list[tuple[int, int]] = []
    end = backup(source, f, progress=lambda i, n: seen.append((i, n)))
    assert set(end["fields"]) == set(SCOPES) and learned_scopes(source) == list(SCOPES)
    assert seen and seen[-1][0] == seen[-1][1] == sum(n for per in end["fields"].values() for n in per.values())
    info = check(f)
    assert info["scopes"]["global"] == {"spam_learned": 12, "ham_learned": 12}
    for target in (MemoryStore(), SqliteStore(tmp_path / "dst.sqlite3")):
        written = restore(target, f)
        assert written == {s: sum(end["fields"][s].values()) for s in SCOPES}
        a, b = BayesClassifier(source, 5), BayesClassifier(target, 5)
        for scopes in (("global",), ("dom:a.example", "global")):
            assert results(b, scopes) == results(a, scopes)
        for s in SCOPES:
            assert b.stats(s) == a.stats(s)
    # learning goes on from the restored state as it would have from the original
    assert b.learn(probes()[0], True) and a.learn(probes()[0], True)  # type: ignore[arg-type]
    assert results(b) == results(a) and b.stats("global") == a.stats("global")


def test_a_scope_with_data_is_replaced_only_when_asked(source: SqliteStore, tmp_path: Path) -> None:
    f = tmp_path / "b.gz"
    backup(source, f, ["global"])
    target = MemoryStore()
    learned(target, 3)
    before = BayesClassifier(target).stats("global")
    dom_before = BayesClassifier(target).stats("dom:a.example")
    with pytest.raises(BackupError, match="already hold learned data"):
        restore(target, f)
    assert BayesClassifier(target).stats("global") == before
    restore(target, f, replace=True)
    restore(target, f, replace=True)  # twice: the same, not doubled
    assert BayesClassifier(target).stats("global") == BayesClassifier(source).stats("global")
    assert BayesClassifier(target).stats("dom:a.example") == dom_before  # not in the file: left alone


def test_scopes_are_chosen_at_either_end(source: SqliteStore, tmp_path: Path) -> None:
    f = tmp_path / "b.gz"
    backup(source, f)
    target = MemoryStore()
    assert restore(target, f, ["dom:a.example"])["dom:a.example"] > 0
    assert BayesClassifier(target).stats("global")["fields"] == 0
    with pytest.raises(BackupError, match="no scope user:x@a.example"):
        restore(MemoryStore(), f, ["user:x@a.example"])
    with pytest.raises(BackupError, match="is not a scope"):
        backup(source, tmp_path / "c.gz", ["bogus scope"])


def _rewrite(src: Path, dst: Path, edit) -> None:  # type: ignore[no-untyped-def]
    lines = gzip.decompress(src.read_bytes()).decode().splitlines()
    out = edit(lines)
    dst.write_bytes(gzip.compress(("\n".join(out) + "\n" if out else "").encode()))


@pytest.mark.parametrize(("edit", "says"), [
    (lambda ls: ls[:-1], "no end line"),
    (lambda ls: ls[:-2] + ls[-1:], "the end line counts"),
    (lambda ls: ls[:1] + ["{not json"] + ls[1:], "line 2: not JSON"),
    (lambda ls: [ls[0].replace("bulwark-bayes-backup", "other")] + ls[1:], "not a Bayes backup"),
    (lambda ls: [ls[0].replace('"version": 1', '"version": 9')] + ls[1:], "backup version 9"),
    (lambda ls: ls[:1] + [ls[1].replace('"kind": "counts"', '"kind": "secrets"')] + ls[2:], "bad kind"),
    (lambda ls: ls[:1] + [json.dumps({"scope": "global", "kind": "counts", "fields": {"#s": -4}})] + ls[1:],
     "positive integers"),
    (lambda ls: [], "empty file"),
    # a count no store holds: refused before --replace empties the scope (it failed after)
    (lambda ls: ls[:1] + [json.dumps({"scope": "global", "kind": "counts", "fields": {"#s": 2 ** 64}})] + ls[1:],
     "at most 9223372036854775807"),
])
def test_a_bad_file_is_refused_and_nothing_is_written(source: SqliteStore, tmp_path: Path, edit, says: str) -> None:  # type: ignore[no-untyped-def]
    good, bad = tmp_path / "good.gz", tmp_path / "bad.gz"
    backup(source, good)
    _rewrite(good, bad, edit)
    target = MemoryStore()
    learned(target, 2)
    before = {s: BayesClassifier(target).stats(s) for s in SCOPES}
    with pytest.raises(BackupError, match=says):
        restore(target, bad, replace=True)
    assert {s: BayesClassifier(target).stats(s) for s in SCOPES} == before


def test_a_cut_or_foreign_stream_is_refused(source: SqliteStore, tmp_path: Path) -> None:
    good = tmp_path / "good.gz"
    backup(source, good)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    plain = tmp_path / "plain.txt"
    plain.write_text("hello\n")
    for f in (cut, plain, tmp_path / "missing.gz"):
        with pytest.raises(BackupError):
            check(f)


def test_big_hashes_go_in_chunks(tmp_path: Path) -> None:
    store = MemoryStore()
    store.add_counters([(scope_key("global"), {f"t{i:06d}": i + 1 for i in range(CHUNK * 2 + 7)})])
    f = tmp_path / "b.gz"
    end = backup(store, f)
    assert end["lines"] == 3 and end["fields"]["global"]["counts"] == CHUNK * 2 + 7
    target = SqliteStore(tmp_path / "t.sqlite3")
    restore(target, f)
    got = [x for part in target.counter_items(scope_key("global"), 1000) for x in part]
    assert got == sorted((f"t{i:06d}", i + 1) for i in range(CHUNK * 2 + 7))
    assert not list(tmp_path.glob(".b.gz.*"))  # no temporary file left


def test_a_bad_value_leaves_a_sqlite_scope_whole(source: SqliteStore, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.gz", tmp_path / "bad.gz"
    backup(source, good)
    _rewrite(good, bad, lambda ls: ls[:1] + [json.dumps({"scope": "global", "kind": "counts",
                                                         "fields": {"#s": 2 ** 63}})] + ls[1:])
    before = BayesClassifier(source).stats("global")
    with pytest.raises(BackupError):
        restore(source, bad, replace=True)
    assert BayesClassifier(source).stats("global") == before and before["spam_learned"] > 0


def test_a_user_scope_with_a_quoted_local_part_is_backed_up(tmp_path: Path) -> None:
    """A quoted local part ("john doe"@example.com) with per_user on: such a scope stopped every
    backup, the daily one included."""
    store = MemoryStore()
    bc = BayesClassifier(store, 5)
    rnd = random.Random(4)
    scope = 'user:"john doe"@example.com'
    for i in range(3):
        bc.learn(message_view(make_ctx(sample(SPAM_WORDS, i, rnd))), True, ("global", scope))
    f = tmp_path / "b.gz"
    end = backup(store, f)
    assert scope in end["fields"]
    target = MemoryStore()
    restore(target, f)
    assert BayesClassifier(target).stats(scope) == bc.stats(scope)


def test_more_scopes_than_a_backup_reads_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway_milter.antispam import bayesbackup

    store = MemoryStore()
    learned(store, 2)
    monkeypatch.setattr(bayesbackup, "MAX_SCOPES", 1)  # (two scopes hold counts)
    with pytest.raises(BackupError, match="more than 1 scopes"):
        backup(store, tmp_path / "b.gz")
    assert not (tmp_path / "b.gz").exists()
    backup(store, tmp_path / "b.gz", ["global"])  # chosen ones still go


def test_a_scope_whose_counts_were_all_forgotten_keeps_its_token_model(tmp_path: Path) -> None:
    """``bayes forget`` takes the counts back but keeps the token model's weights and sums: such
    a scope is still backed up (before: no counts, so left out of every backup)."""
    store = SqliteStore(tmp_path / "s.sqlite3")
    bc = BayesClassifier(store, 5)
    rnd = random.Random(4)
    views = [message_view(make_ctx(sample(SPAM_WORDS if i % 2 else HAM_WORDS, i, rnd))) for i in range(6)]
    for i, v in enumerate(views):
        bc.learn(v, bool(i % 2), ("dom:b.example",))
    for v in views:
        bc.forget(v, ("dom:b.example",))
    st = bc.stats("dom:b.example")
    assert st["fields"] == 0 and st["token_weights"] > 0
    assert learned_scopes(store) == ["dom:b.example"]
    end = backup(store, tmp_path / "b.jsonl.gz")
    assert end["fields"]["dom:b.example"]["weights"] > 0
    target = MemoryStore()
    restore(target, tmp_path / "b.jsonl.gz")
    assert BayesClassifier(target, 5).stats("dom:b.example") == st
