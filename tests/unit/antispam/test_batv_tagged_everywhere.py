"""A local ``prvs=`` recipient is its plain address everywhere, and outbound mail is never sent
unsigned when its bounce would be refused:

- with the key store down, signing goes on with the keys the process read within the hour, and
  without them outbound mail is deferred (it went out unsigned, and its genuine bounce was
  refused later: the sender never learnt the mail was not delivered);
- the layer off (tags made while it was on still come back) and an outbound transaction with a
  colleague's tagged address untag the recipient (both left ``prvs=...=bob@``, which nothing
  downstream knows);
- spam traps, Sieve (``envelope "to"``, ``bulwark_list "recipient"``), Bayes' per-user scope and
  the message log name the plain address (a tag, which anyone can write, passed a trap by);
- ``exempt_recipients`` takes ``@domain`` and refuses patterns that never matched."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway_milter.context import ConnectionInfo
from gateway_milter.layers import backscatter
from gateway_milter.layers.backscatter import exempt_set, refusable, sign
from gateway_milter.layers.base import SettingsError
from gateway_milter.layers.bayes import BayesSettings, scopes_for
from gateway_milter.policy.snapshot import build_settings
from gateway_milter.store import StoreError, set_default_store
from gateway_milter.store.memory import MemoryStore
from tests.unit.sieve.helpers import only_layers
from tests.unit.spine.conftest import make_gateway

DSN = (b"From: MAILER-DAEMON@remote.test\r\nTo: bob@example.com\r\nSubject: Undelivered Mail\r\n"
       b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n"
       b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n--b--\r\n")
PLAIN = b"From: bob@example.com\r\nSubject: hello\r\n\r\nhello\r\n"
FORGED = "prvs=1000000000="  # a tag anyone can write


class FlakyStore(MemoryStore):
    down = False

    def get(self, key: str) -> Any:
        if self.down:
            raise StoreError("connection refused")
        return super().get(key)

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        if self.down:
            raise StoreError("connection refused")
        return super().add(key, value, ttl)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> Iterator[FlakyStore]:
    monkeypatch.setattr(backscatter, "_last_keys", None, raising=False)
    s = FlakyStore()
    set_default_store(s)
    yield s
    set_default_store(None)


def _gateway(extra: dict[str, Any] | None = None, bs: dict[str, Any] | None = None, **doc_extra: Any) -> Any:
    settings: dict[str, Any] = only_layers("lists", "direction", "relay", "backscatter", *(extra or {}))
    settings["backscatter"] = bs or {"mode": "on"}
    settings.update(extra or {})
    doc = {"settings": settings, "domains": [{"name": "example.com"}], "trusted_networks": ["10.0.0.0/8"], **doc_extra}
    return make_gateway(doc)


def _run(gw: Any, ip: str, sender: str, rcpts: list[str], raw: bytes = PLAIN) -> tuple[Any, Any]:
    ctx = gw.begin(ConnectionInfo(client_ip=ip, helo="h.test", client_name="h.test"))
    gw.mail(ctx, sender)
    for r in rcpts:
        assert gw.rcpt(ctx, r).action == "continue"
    head, body = raw.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n"):
        n, _, v = line.decode().partition(": ")
        ctx.add_header(n, v)
    ctx.body.write(body)
    d = gw.eom(ctx)
    gw.finish(ctx)
    return ctx, d


def test_with_the_store_down_outbound_mail_is_signed_with_the_keys_read_before(flaky: FlakyStore) -> None:
    gw, _, _ = _gateway()
    _ctx, first = _run(gw, "10.1.1.1", "alice@example.com", ["x@remote.test"])
    assert first.change_sender and first.change_sender.startswith("prvs=")
    flaky.down = True
    _ctx, d = _run(gw, "10.1.1.1", "bob@example.com", ["carol@remote.test"])
    assert d.action.value == "accept" and d.change_sender and d.change_sender.endswith("=bob@example.com")
    flaky.down = False
    _ctx, bounce = _run(gw, "203.0.113.9", "", [d.change_sender], raw=DSN)  # (its bounce is delivered)
    assert bounce.action.value == "accept" and bounce.add_recipients == ["bob@example.com"]


def test_with_the_store_down_and_no_keys_read_outbound_mail_is_deferred(flaky: FlakyStore) -> None:
    gw, _, sink = _gateway()
    flaky.down = True
    _ctx, d = _run(gw, "10.1.1.1", "bob@example.com", ["carol@remote.test"])
    assert d.action.value == "tempfail" and d.reply is not None and d.reply.code.startswith("4")
    assert "keys cannot be read" in sink.records[-1]["reason"] or any(
        "keys cannot be read" in t["detail"] for t in sink.records[-1]["trace"])
    # bounces not refused: nothing lost by sending it unsigned, it goes out
    gw, _, _ = _gateway(bs={"mode": "on", "refuse_unsigned_bounces": False})
    _ctx, d = _run(gw, "10.1.1.1", "bob@example.com", ["carol@remote.test"])
    assert d.action.value == "accept" and d.change_sender is None


def test_keys_read_more_than_an_hour_ago_are_not_used(flaky: FlakyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    sign("alice@example.com", flaky, now=1_000_000.0)
    flaky.down = True
    with pytest.raises(StoreError):
        sign("alice@example.com", flaky, now=1_000_000.0 + backscatter.KEY_CACHE_S + 1)
    assert sign("alice@example.com", flaky, now=1_000_000.0 + 60).startswith("prvs=")


@pytest.mark.parametrize("mode", ["off", "score"])
def test_the_layer_off_still_untags(flaky: FlakyStore, mode: str) -> None:
    on, _, _ = _gateway()
    _ctx, d = _run(on, "10.1.1.1", "bob@example.com", ["carol@remote.test"])
    tagged = d.change_sender
    assert tagged
    off, _, _ = _gateway(bs={"mode": mode})
    _ctx, d = _run(off, "203.0.113.9", "", [tagged], raw=DSN)
    assert d.action.value == "accept" and d.delete_recipients == [tagged] and d.add_recipients == ["bob@example.com"]


def test_an_outbound_transaction_untags_a_colleagues_tagged_address(flaky: FlakyStore) -> None:
    gw, _, _ = _gateway()
    tagged = sign("alice@example.com", flaky)
    _ctx, d = _run(gw, "10.1.1.1", "bob@example.com", ["carol@remote.test", tagged])
    assert d.change_sender and tagged in d.delete_recipients and "alice@example.com" in d.add_recipients


@pytest.mark.parametrize("prefix", ["", "valid", FORGED])
def test_a_tagged_spam_trap_is_a_spam_trap(flaky: FlakyStore, prefix: str) -> None:
    gw, _, _ = _gateway({"spamtrap": {"mode": "on", "addresses": ["trap@example.com"],
                                      "mark_ip": False, "train_bayes": False}})
    rcpt = sign("trap@example.com", flaky) if prefix == "valid" else prefix + "trap@example.com"
    _ctx, d = _run(gw, "203.0.113.9", "spammer@spam.test", [rcpt])
    assert d.action.value == "discard", (rcpt, d.add_recipients)


def test_sieve_sees_a_tagged_recipient_as_its_plain_address(flaky: FlakyStore) -> None:
    script = ('require ["envelope", "editheader", "vnd.bulwark"];\n'
              'if envelope :is "to" "ceo@example.com" { addheader "X-Env-Ceo" "yes"; }\n'
              'if bulwark_list :allow "recipient" { addheader "X-Allowed-Rcpt" "yes"; }\n')
    gw, _, _ = _gateway(lists=[{"list": "allow", "kind": "recipient", "value": "ceo@example.com"}],
                        scripts=[{"name": "s", "position": "before", "source": script}])
    for rcpt in ("ceo@example.com", sign("ceo@example.com", flaky), FORGED + "ceo@example.com"):
        _ctx, d = _run(gw, "203.0.113.9", "someone@remote.test", [rcpt])
        assert sorted(e.name for e in d.header_edits if e.name.startswith("X-")
                      and e.name in ("X-Env-Ceo", "X-Allowed-Rcpt")) == ["X-Allowed-Rcpt", "X-Env-Ceo"], rcpt


def test_the_bayes_user_scope_and_the_log_name_the_plain_address(flaky: FlakyStore) -> None:
    gw, _, sink = _gateway({"bayes": {"mode": "off"}})
    rcpt = sign("alice@example.com", flaky)
    ctx, _d = _run(gw, "203.0.113.9", "friend@remote.test", [rcpt])
    assert scopes_for(ctx, BayesSettings(mode="on", per_user=True))[0] == "user:alice@example.com"
    assert [r["address"] for r in sink.records[-1]["recipients"]] == ["alice@example.com"]
    _ctx, _d = _run(gw, "203.0.113.9", "friend@remote.test", ["alice@example.com", rcpt])
    assert [r["address"] for r in sink.records[-1]["recipients"]] == ["alice@example.com"]  # (one delivery)


def test_exempt_recipients_takes_a_domain_and_refuses_patterns() -> None:
    s = build_settings("backscatter", {"mode": "on", "exempt_recipients": ["@example.com", "postmaster"]}, None)
    assert not refusable("billing@example.com", None, exempt_set(s))
    assert refusable("billing@other.example", None, exempt_set(s))
    for bad in ("*@example.com", "", "a b", "x@y@z"):
        with pytest.raises(SettingsError, match="exempt_recipients"):
            build_settings("backscatter", {"mode": "on", "exempt_recipients": [bad]}, None)


def test_a_tagged_twin_of_a_plain_recipient_is_delivered_once(flaky: FlakyStore) -> None:
    gw, _, _ = _gateway()
    tagged = sign("bob@example.com", flaky)
    _ctx, d = _run(gw, "203.0.113.9", "friend@remote.test", ["bob@example.com", tagged])
    assert d.action.value == "accept" and d.delete_recipients == [tagged] and d.add_recipients == []
