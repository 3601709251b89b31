"""What end of message does with recipients, against "never lose mail": BATV tags come off
whatever decided the message, quarantined copies are held for the plain address, a quarantined
recipient's tagged twin does not bring it back, a redirect :copy still reaches its target when
every original recipient is held, a real recipient beside a spam trap is quarantined rather
than silently dropped, and the quarantine's new day directories are made durable."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import Milter
import pytest
from Milter.testctx import TestCtx

from gateway_milter.layers.backscatter import sign
from gateway_milter.store.memory import MemoryStore
from gateway_milter.store.quarantine import FilesystemQuarantineStore
from tests.unit.spine.conftest import BASE_POLICY, make_gateway
from tests.unit.spine.test_milter_front import NO_NR_OPTS, run

REPLY = b"From: Carol <carol@remote.test>\nTo: bob@example.com\nSubject: Re: hello\n\nThanks Bob.\n"


@pytest.fixture(autouse=True)
def _mta_without_noreply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestCtx, "default_opts", list(NO_NR_OPTS))


def _doc(scripts: list[dict[str, Any]], backscatter_mode: str = "on") -> dict[str, Any]:
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"]["backscatter"] = {"mode": backscatter_mode}
    doc["scripts"] = scripts
    return doc


def test_a_tagged_recipient_is_untagged_when_an_earlier_script_decides(store: MemoryStore) -> None:
    tagged = sign("bob@example.com", store)
    gw, _, _ = make_gateway(_doc([{"name": "allow-partner", "position": "before",
                                   "source": 'if address :is "from" "carol@remote.test" { keep; }'}]))
    ctx, rc = run(gw, "carol@remote.test", tagged, msg=REPLY)
    assert rc == Milter.ACCEPT
    assert ctx._delrcpt == [f"<{tagged}>"]
    assert [a for a, _ in ctx._addrcpt] == ["<bob@example.com>"]


def test_a_tagged_recipient_is_untagged_when_backscatter_only_scores(store: MemoryStore) -> None:
    tagged = sign("bob@example.com", store)
    gw, _, _ = make_gateway(_doc([], backscatter_mode="score"))
    ctx, rc = run(gw, "carol@remote.test", tagged, msg=REPLY)
    assert rc == Milter.ACCEPT
    assert [a for a, _ in ctx._addrcpt] == ["<bob@example.com>"]


def test_a_quarantined_copy_for_a_tagged_recipient_is_held_for_the_plain_address(store: MemoryStore) -> None:
    tagged = sign("bob@example.com", store)
    gw, q, _ = make_gateway(_doc([{"name": "hold-all", "position": "after",
                                   "source": 'require "fileinto"; fileinto "Junk";'}]))
    ctx, rc = run(gw, "carol@remote.test", tagged, msg=REPLY)
    assert rc == Milter.DISCARD
    [(_, meta)] = q.items
    assert meta["recipients"] == ["bob@example.com"]


def test_a_tagged_twin_of_a_held_recipient_is_held_too(store: MemoryStore) -> None:
    # judged by its plain address: the recipient blocklist holds it as it holds the plain one
    # (before, the tagged twin escaped the list and was delivered to the held address)
    tagged = sign("held@other.example", store)
    gw, q, sink = make_gateway(_doc([]))
    ctx, rc = run(gw, "carol@remote.test", tagged, "held@other.example", msg=REPLY)
    assert rc == Milter.DISCARD  # (every recipient held: nothing delivered)
    [(_, meta)] = q.items
    assert meta["recipients"] == ["held@other.example"]
    assert "<held@other.example>" not in [a for a, _ in ctx._addrcpt]
    assert {r["action"] for r in sink.records[-1]["recipients"]} == {"quarantine"}


@pytest.mark.parametrize("how", ["message-quarantine", "every-recipient-held"])
def test_a_redirect_copy_is_sent_when_the_original_recipients_are_quarantined(how: str) -> None:
    if how == "message-quarantine":
        src = 'require ["copy", "fileinto"]; redirect :copy "archive@example.com"; fileinto "Junk";'
        rcpt = "bob@example.com"
    else:
        src = 'require ["copy"]; redirect :copy "archive@example.com";'
        rcpt = "held@other.example"  # held at RCPT by the domain's recipient blocklist
    doc = copy.deepcopy(BASE_POLICY)
    doc["scripts"] = [{"name": "archive", "position": "before", "source": src}]
    gw, q, _ = make_gateway(doc)
    ctx, rc = run(gw, "alice@outside.test", rcpt)
    assert len(q.items) == 1
    assert rc == Milter.ACCEPT, rc
    assert [a for a, _ in ctx._addrcpt] == ["<archive@example.com>"]
    assert ctx._delrcpt == [f"<{rcpt}>"]


def test_a_real_recipient_beside_a_spam_trap_is_quarantined_not_dropped(store: MemoryStore) -> None:
    doc = _doc([], backscatter_mode="off")
    doc["settings"]["spamtrap"] = {"mode": "on", "addresses": ["trap@example.com"], "train_bayes": False}
    gw, q, sink = make_gateway(doc)
    ctx, rc = run(gw, "alice@outside.test", "bob@example.com", "trap@example.com")
    assert rc == Milter.DISCARD  # (not delivered: held)
    [(_, meta)] = q.items
    assert "bob@example.com" in meta["recipients"] and meta["queue"] == "admin"
    ctx, rc = run(gw, "alice@outside.test", "trap@example.com")
    assert rc == Milter.DISCARD and len(q.items) == 1  # to the trap alone: discarded, nothing held
    assert sink.records[-1]["action"] == "discard"


def test_the_quarantine_syncs_every_directory_it_makes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    root = tmp_path / "q"
    root.mkdir()
    meta = FilesystemQuarantineStore(root).store(b"Subject: x\r\n\r\nbody\r\n", {"created": 1_700_000_000.0})
    day_dir = (root / meta["path"]).parent
    for d in (day_dir, day_dir.parent, day_dir.parent.parent, root):
        assert str(d) in synced, f"{d} was not synced"
    synced.clear()
    FilesystemQuarantineStore(root).store(b"Subject: y\r\n\r\nbody\r\n", {"created": 1_700_000_001.0})
    assert str(root) not in synced  # the same day: only the day's own directory


def test_a_tempfail_after_a_quarantine_leaves_no_copy_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    # one recipient held, the other delivered; applying the delivered copy's changes fails: the
    # client retries the whole message, which is judged and held again, so the first copy goes
    from gateway_milter.front.milter import BulwarkMilter

    gw, q, sink = make_gateway()

    def broken(self: Any, *a: Any, **k: Any) -> None:
        raise RuntimeError("the MTA went away")
    monkeypatch.setattr(BulwarkMilter, "addheader", broken)
    ctx, rc = run(gw, "alice@outside.test", "carol@other.example", "held@other.example")
    assert rc == Milter.TEMPFAIL
    assert q.items == [] and q.stored == 1
    assert sink.records[-1]["action"] == "tempfail" and not sink.records[-1]["quarantine"]
