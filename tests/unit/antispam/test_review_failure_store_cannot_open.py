"""The state store cannot even be opened (the embedded store's file is not a database, its
directory cannot be written): ``default_store()`` raises on every call. The layers that need
the store only for part of their work must still do the rest, as they do when an opened store
fails: a spam-trap recipient is spotted (SPAMTRAP), and a BATV-tagged recipient of a bounce is
untagged (a prvs= address nothing downstream knows would be refused after acceptance and the
bounce lost). Both layers used to call ``default_store()`` first, outside their handling of
store errors, so the whole layer failed (unknown) and lost that part too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_milter.layers.backscatter import sign
from gateway_milter.store import set_default_store
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy

DSN = msg("Undelivered Mail", "report", ctype='multipart/report; report-type=delivery-status; boundary="b"')


@pytest.fixture()
def broken_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    (tmp_path / "state.sqlite3").write_bytes(b"this is not an SQLite database" * 100)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)
    set_default_store(None)
    yield
    set_default_store(None)


def test_it_spots_a_trap_recipient_when_the_store_cannot_be_opened(broken_store: None) -> None:
    pol = policy({"spamtrap": {"addresses": ["trap@example.com"], "train_bayes": False}})
    ctx = make_ctx(msg("buy", "cheap"), pol, rcpts=("trap@example.com",))
    res = ctx.layer("spamtrap")
    assert res.error is None
    assert res.has("SPAMTRAP") and not res.has("SPAMTRAP_IP")
    assert res.fact("store_error")


def test_it_untags_a_bounce_recipient_when_the_store_cannot_be_opened(broken_store: None) -> None:
    tagged = sign("bob@example.com", MemoryStore(), now=time.time() - 86400)
    ctx = make_ctx(DSN, policy({"backscatter": {"mode": "on"}}), mail_from="", rcpts=(tagged,))
    res = ctx.layer("backscatter")
    assert ctx.facts.get("rewrite_recipients") == {tagged: "bob@example.com"}
    assert res.error is None and res.fact("store_error")
