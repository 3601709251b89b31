"""tokenizer.hashed's memo of recent feature keys (docs/decisions/0062-feature-key-memo.md): the
keys are those of a fresh BLAKE2b whether they come from the memo or not, the memo stays within
two generations, and a snapshot put back is what the benchmark times every message from."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator

import pytest

from gateway_milter.antispam import tokenizer
from gateway_milter.antispam.tokenizer import KeyMemo, hashed


def blake(f: str) -> str:
    return hashlib.blake2b(f.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


@pytest.fixture
def small_memo(monkeypatch: pytest.MonkeyPatch) -> Iterator[KeyMemo]:
    memo = KeyMemo(cap=8)
    monkeypatch.setattr(tokenizer, "KEY_MEMO", memo)
    yield memo


def test_keys_from_the_memo_are_the_keys_made_anew(small_memo: KeyMemo) -> None:
    feats = ["shared", "w|1|ü", "", "lone\udc80surrogate", "shared"]
    first = hashed(feats)
    assert first == [blake(f) for f in feats]
    assert set(small_memo.cur) == set(feats)
    small_memo.cur["shared"] = "from-the-memo"  # (a second call reads the memo, not BLAKE2b)
    assert hashed(["shared", "w|1|ü"]) == ["from-the-memo", blake("w|1|ü")]


def test_the_memo_keeps_two_generations_and_promotes_what_it_finds_in_the_old(small_memo: KeyMemo) -> None:
    first = [f"a{i}" for i in range(8)]
    hashed(first)  # the current generation fills up: it becomes the old one
    assert small_memo.cur == {} and set(small_memo.old) == set(first)
    assert hashed(["a3", "b1"]) == [blake("a3"), blake("b1")]
    assert set(small_memo.cur) == {"a3", "b1"}  # found in the old generation: copied to the current one
    hashed([f"c{i}" for i in range(6)])  # full again: the first generation is dropped
    assert "a0" not in small_memo.old and "a0" not in small_memo.cur
    assert len(small_memo.cur) + len(small_memo.old) <= 2 * small_memo.cap
    for _ in range(50):  # however many features go through it
        hashed([f"d{i}" for i in range(5)] + [f"e{_}"])
        assert len(small_memo.cur) < small_memo.cap and len(small_memo.old) <= small_memo.cap + 5


def test_a_snapshot_put_back_answers_as_then_and_is_not_changed_by_later_calls(small_memo: KeyMemo) -> None:
    hashed(["x", "y"])
    state = small_memo.snapshot()
    assert state == {"x": blake("x"), "y": blake("y")}
    for round_ in range(3):
        small_memo.restore(state)
        assert small_memo.cur == {} and small_memo.old is state  # (shared: two assignments)
        hashed(["x", f"new{round_}", "z", "w", "v", "u", "t", "s", "r"])  # fills and ages the current one
        assert state == {"x": blake("x"), "y": blake("y")}  # hashed never writes into the old generation


def test_threads_sharing_the_memo_get_the_right_keys(small_memo: KeyMemo) -> None:
    small_memo.cap = 64
    feats = [f"f{i % 300}" for i in range(3000)]
    want = [blake(f) for f in feats]
    wrong: list[int] = []

    def work(k: int) -> None:
        for start in range(k, len(feats), 250):
            got = hashed(feats[start:start + 250])
            wrong.extend(i for i, g in enumerate(got) if g != want[start + i])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong
