"""Greylisting's ``exempt_client_names``: big senders that retry from a pool of networks pass
by their verified reverse name (and the names under a listed domain), never by an unverified
one (Postfix's ``unknown``, Sendmail's ``{client_resolve}`` other than OK, a bracketed
address); with the list cleared the same client is deferred (the control)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter.context import ConnectionInfo
from gateway_milter.layers.base import SettingsError, settings_from_dict
from gateway_milter.layers.greylist import GreylistSettings, client_name_matches
from gateway_milter.pipeline.runner import LayerResult
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Stage
from tests.unit.antispam.helpers import make_ctx, msg


def judged(name: str, greylist: dict[str, Any] | None = None, resolve: str | None = None) -> LayerResult:
    pol = PolicySnapshot.from_document({"settings": {"greylist": {"mode": "on", **(greylist or {})}},
                                        "domains": ["example.com"]})
    ctx = make_ctx(msg(), pol, stage=Stage.RCPT, ip="209.85.221.54")
    ctx.conn.client_name = name
    if resolve is not None:
        ctx.conn.macros["{client_resolve}"] = resolve
    assert ctx.runner is not None
    return ctx.runner.recipient_result(ctx, "greylist", ctx.recipients[0])


def test_the_default_list_lets_gmail_through_by_its_verified_name(store: MemoryStore) -> None:
    res = judged("mail-wr1-f54.google.com")
    assert res.has("GREYLIST_EXEMPT") and res.fact("reason") == "exempt client name", res.facts
    assert judged("mail-wr1-f54.google.com", {"exempt_client_names": []}).has("GREYLIST_DEFER")


@pytest.mark.parametrize(("name", "resolve"), [
    ("unknown", None),  # Postfix: no verified name
    ("mail-wr1-f54.google.com", "FORGED"),  # Sendmail: the PTR name did not resolve back
    ("mail-wr1-f54.google.com", "FAIL"),
    ("[209.85.221.54]", None),
    ("google.com.evil.example", None),
    ("notgoogle.com", None),
])
def test_an_unverified_or_lookalike_name_is_greylisted(store: MemoryStore, name: str, resolve: str | None) -> None:
    assert judged(name, resolve=resolve).has("GREYLIST_DEFER")


def test_sendmails_confirmed_name_counts(store: MemoryStore) -> None:
    assert judged("a1-23.smtp-out.amazonses.com", resolve="OK").has("GREYLIST_EXEMPT")


def test_entries_match_themselves_and_the_names_under_them() -> None:
    for entry in ("example.net", "*.example.net", ".example.net", "EXAMPLE.NET."):
        assert client_name_matches("mx1.out.example.net", (entry,))
        assert client_name_matches("example.net", (entry,))
        assert not client_name_matches("badexample.net", (entry,))
    assert not client_name_matches("", ("example.net",))


@pytest.mark.parametrize("bad", ["com", "*.com", "exa mple.net", "bad_name.example", "*", ""])
def test_a_bad_entry_is_refused_naming_it(bad: str) -> None:
    with pytest.raises(SettingsError) as e:
        settings_from_dict(GreylistSettings, {"exempt_client_names": ["google.com", bad]})
    assert e.value.path.endswith("exempt_client_names[1]")


def test_the_verified_name_of_a_connection() -> None:
    assert ConnectionInfo(client_name="MX.Example.NET.").verified_name == "mx.example.net"
    c = ConnectionInfo(client_name="mx.example.net")
    c.macros["{client_resolve}"] = "TEMP"
    assert c.verified_name == ""
