"""The SpamAssassin SPF and DKIM plugins' rules (``SPF_PASS``, ``SPF_HELO_FAIL``, ``DKIM_VALID_AU``,
...) that metas read are answered by the spf and dkim layers' results. Before, they read 0:
Debian's FROM_BANK_NOAUTH (a bank's From with neither SPF_PASS nor DKIM_VALID_AU) hit every
bank's authenticated mail. Real SPF checks and DKIM signatures against zone data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_milter.auth.keystore import KeyStore
from gateway_milter.context import MessageContext
from gateway_milter.layers.rules import local_rules_problems
from gateway_milter.net import resolver as r
from gateway_milter.transforms.dkimsign import sign_message
from tests.unit.auth.auth_helpers import make_ctx, message, rules_doc

RULES = r"""
header   __LOCAL_FROM_EX  From =~ /\@(?:\w+\.)*example\.test\b/i
meta     LOCAL_NOAUTH     __LOCAL_FROM_EX && !(SPF_PASS || DKIM_VALID_AU)
score    LOCAL_NOAUTH     2.0
meta     LOCAL_SIGNED_AU  DKIM_SIGNED && DKIM_VALID && DKIM_VALID_AU
score    LOCAL_SIGNED_AU  -1.0
meta     LOCAL_HELO_FAIL  SPF_HELO_FAIL && !SPF_PASS
score    LOCAL_HELO_FAIL  1.0
"""


@pytest.fixture()
def zone() -> Iterator[r.StaticBackend]:
    be = r.StaticBackend({
        ("example.test", "TXT"): ["v=spf1 ip4:192.0.2.0/28 -all"],
        ("mail.example.test", "A"): ["192.0.2.10"],
        ("mail.example.test", "TXT"): ["v=spf1 a -all"],
    })
    prev = r.set_resolver(r.Resolver(backend=be, timeout=5.0))
    yield be
    r.set_resolver(prev)


@pytest.fixture()
def keys(tmp_path: Path, zone: r.StaticBackend) -> KeyStore:
    ks = KeyStore(tmp_path / "dkim")
    zone.add("sel1._domainkey.example.test", "TXT", [ks.generate("example.test", "sel1", bits=1024)])
    return ks


def signed(ks: KeyStore, raw: bytes) -> bytes:
    key = ks.signing_key("example.test", "sel1")
    assert key is not None
    name, value = sign_message(raw, "example.test", "sel1", key.private, key.algorithm, ["from", "to", "subject", "date"])
    return f"{name}: {value}\r\n".replace("\n\t", "\r\n\t").encode() + raw


def doc(tmp_path: Path) -> dict[str, object]:
    return rules_doc(tmp_path, RULES)


def hits(ctx: MessageContext, first: tuple[str, ...] = ("spf", "dkim")) -> set[str]:
    for layer_id in first:  # as the layer order runs them: spf at MAIL FROM, dkim before rules
        ctx.layer(layer_id)
    return {s.name for s in ctx.layer("rules").symbols}


def test_spf_pass_answers_the_plugins_spf_pass(tmp_path: Path, zone: r.StaticBackend) -> None:
    assert "LOCAL_NOAUTH" not in hits(make_ctx(message(), ip="192.0.2.5", doc=doc(tmp_path)))
    got = hits(make_ctx(message(), ip="203.0.113.9", doc=doc(tmp_path)))  # SPF fails, HELO too
    assert {"LOCAL_NOAUTH", "LOCAL_HELO_FAIL"} <= got


def test_an_author_domain_signature_answers_dkim_valid_au(tmp_path: Path, keys: KeyStore) -> None:
    got = hits(make_ctx(signed(keys, message()), ip="203.0.113.9", doc=doc(tmp_path)))
    assert "LOCAL_SIGNED_AU" in got and "LOCAL_NOAUTH" not in got
    # the signature of a parent domain is no author domain signature (SpamAssassin's exact match)
    sub = signed(keys, message(frm="Alice <alice@news.example.test>"))
    got = hits(make_ctx(sub, ip="203.0.113.9", doc=doc(tmp_path)))
    assert "LOCAL_SIGNED_AU" not in got and "LOCAL_NOAUTH" in got


def test_the_rules_layer_reads_only_results_at_hand(tmp_path: Path, zone: r.StaticBackend) -> None:
    """Asked before spf ran (or with spf off), the plugin rules read 0, as before: the rules
    layer never starts a DNS check itself."""
    ctx = make_ctx(message(), ip="192.0.2.5", doc=doc(tmp_path))
    assert "LOCAL_NOAUTH" in hits(ctx, first=())
    assert ctx.runner is not None and ctx.runner.peek("spf") is None
    off = doc(tmp_path)
    off["settings"] = {**off["settings"], "spf": {"mode": "off"}}  # type: ignore[dict-item]
    assert "LOCAL_NOAUTH" in hits(make_ctx(message(), ip="192.0.2.5", doc=off))


def test_a_local_rule_reading_a_plugin_rule_gets_no_read_as_0_warning() -> None:
    text = "meta LOCAL_A SPF_PASS && !DKIM_VALID_AU\nscore LOCAL_A 1\nmeta LOCAL_B LOCAL_TYPO\nscore LOCAL_B 1\n"
    assert [p.message for p in local_rules_problems(text, known=set())[1]] == [
        "LOCAL_B reads LOCAL_TYPO, which no rule defines (read as 0)"]


def test_a_dns_allowlist_hit_answers_rcvd_in_dnswl(tmp_path: Path, zone: r.StaticBackend) -> None:
    """Debian's KHOP_HELO_FCRDNS reads ``!__RCVD_IN_DNSWL``: a client on a zone with a negative
    weight (DNSWL as docs/layers/dnsbl.md configures it) answers it; a blocklist hit does not."""
    zone.add("9.113.0.203.list.dnswl.test", "A", ["127.0.15.2"])
    zone.add("9.113.0.203.bl.test", "A", ["127.0.0.2"])
    rules = doc(tmp_path)
    (tmp_path / "rules" / "local.cf").write_text("meta LOCAL_NOT_WL !__RCVD_IN_DNSWL\nscore LOCAL_NOT_WL 1\n")

    def with_zones(*zones: dict[str, object]) -> dict[str, object]:
        return {**rules, "settings": {**rules["settings"], "dnsbl": {"mode": "on", "zones": list(zones)}}}  # type: ignore[dict-item]

    wl = {"zone": "list.dnswl.test", "symbol": "DNSWL_LISTED", "weight": -1}
    bl = {"zone": "bl.test", "symbol": "BL_LISTED", "weight": 2}
    assert "LOCAL_NOT_WL" not in hits(make_ctx(message(), ip="203.0.113.9", doc=with_zones(wl, bl)), first=("dnsbl",))
    assert "LOCAL_NOT_WL" in hits(make_ctx(message(), ip="203.0.113.9", doc=with_zones(bl)), first=("dnsbl",))


def test_the_scoring_layer_asks_spf_and_dkim_before_the_rules(tmp_path: Path, keys: KeyStore) -> None:
    """With every SPF action "score" (the default) spf has no policy rule of its own to run at
    MAIL FROM: the scoring layer, which asks its local layers first, asks spf, dkim and dnsbl
    before the rules, so that the rules see their results and the total does not depend on
    the order."""
    ctx = make_ctx(message(), ip="192.0.2.5", doc=doc(tmp_path))
    ctx.layer("scoring")
    assert "LOCAL_NOAUTH" not in {s.name for s in ctx.layer("rules").symbols}
    ctx = make_ctx(signed(keys, message()), ip="203.0.113.9", doc=doc(tmp_path))
    ctx.layer("scoring")
    assert "LOCAL_SIGNED_AU" in {s.name for s in ctx.layer("rules").symbols}
