"""A state store that fails while the spam-trap layer reads the client's mark (SPAMTRAP_IP)
must show in the message's trace: the layer catches the error itself (so that SPAMTRAP still
counts) and only put it in a fact, which the message log does not keep, so a message from an
IP that hit a trap an hour ago was scored without its SPAMTRAP_IP points and nothing in the
log said why."""

from __future__ import annotations


from gateway_milter.store import set_default_store
from gateway_milter.store.memory import MemoryStore
from tests.unit.antispam.helpers import make_ctx, msg, policy
from tests.unit.antispam.test_spamtrap_store_down import DownStore


def test_it_traces_a_store_error_when_reading_the_clients_mark() -> None:
    set_default_store(DownStore())
    try:
        pol = policy({"spamtrap": {"addresses": ["trap@example.com"], "train_bayes": False}})
        ctx = make_ctx(msg("buy", "cheap"), pol, rcpts=("bob@example.com",))
        res = ctx.layer("spamtrap")
        assert res.error is None and res.fact("store_error") == "connection refused"
        errors = [t for t in ctx.trace if t.source == "spamtrap" and t.event == "error"]
        assert errors and "connection refused" in errors[0].detail
    finally:
        set_default_store(None)


def test_it_adds_no_error_when_the_store_answers() -> None:
    set_default_store(MemoryStore())
    try:
        pol = policy({"spamtrap": {"addresses": ["trap@example.com"], "train_bayes": False}})
        ctx = make_ctx(msg("buy", "cheap"), pol, rcpts=("bob@example.com",))
        ctx.layer("spamtrap")
        assert not [t for t in ctx.trace if t.event == "error"]
    finally:
        set_default_store(None)
