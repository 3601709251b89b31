"""SPF, DKIM, DMARC, ARC layers on real messages, with zone data served through the resolver
test seam (StaticBackend): the same code path as real DNS answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_milter import layers
from gateway_milter.auth.keystore import KeyStore
from gateway_milter.layers.dkim import verify_all
from gateway_milter.net import resolver as r
from gateway_milter.transforms.dkimsign import arc_seal_headers, sign_message
from gateway_milter.verdict import Action
from tests.unit.auth.auth_helpers import make_ctx, message

SPF = "v=spf1 ip4:192.0.2.0/28 -all"


@pytest.fixture()
def zone() -> Iterator[r.StaticBackend]:
    be = r.StaticBackend({
        ("example.test", "TXT"): [SPF],
        ("_dmarc.example.test", "TXT"): ["v=DMARC1; p=reject; sp=quarantine; rua=mailto:rua@example.test"],
        ("mail.example.test", "A"): ["192.0.2.10"],
        ("mail.example.test", "TXT"): ["v=spf1 a -all"],
        ("softfail.test", "TXT"): ["v=spf1 ~all"],
        ("slow.test", "TXT"): "TIMEOUT",
        ("_dmarc.slow.test", "TXT"): "TIMEOUT",
    })
    prev = r.set_resolver(r.Resolver(backend=be, timeout=5.0))  # generous: it only bounds waits, which a loaded machine stretches
    yield be
    r.set_resolver(prev)


@pytest.fixture()
def keys(tmp_path: Path, zone: r.StaticBackend) -> KeyStore:
    ks = KeyStore(tmp_path / "dkim")
    zone.add("sel1._domainkey.example.test", "TXT", [ks.generate("example.test", "sel1", bits=1024)])
    zone.add("ed._domainkey.example.test", "TXT", [ks.generate("example.test", "ed", "ed25519-sha256")])
    return ks


def signed(ks: KeyStore, raw: bytes, domain: str = "example.test", selector: str = "sel1", **kw: Any) -> bytes:
    key = ks.signing_key(domain, selector)
    assert key is not None
    name, value = sign_message(raw, domain, selector, key.private, key.algorithm, ["from", "to", "subject", "date"],
                               **kw)
    return f"{name}: {value}\r\n".replace("\n\t", "\r\n\t").encode() + raw


def symbols(ctx: Any, layer_id: str) -> set[str]:
    return {s.name for s in ctx.layer(layer_id).symbols}


# -- SPF -------------------------------------------------------------------------------------------
def test_it_passes_spf_for_an_authorised_ip(zone: r.StaticBackend) -> None:
    ctx = make_ctx(ip="192.0.2.5")
    res = ctx.layer("spf")
    assert res.fact("result") == "pass" and res.fact("domain") == "example.test"
    assert "SPF_PASS" in symbols(ctx, "spf")


def test_it_fails_spf_and_checks_helo_too(zone: r.StaticBackend) -> None:
    ctx = make_ctx(ip="203.0.113.9")
    res = ctx.layer("spf")
    assert res.fact("result") == "fail" and res.fact("helo_result") == "fail"
    assert {"SPF_FAIL", "SPF_HELO_FAIL"} <= symbols(ctx, "spf")


def test_it_uses_the_helo_identity_for_the_null_sender(zone: r.StaticBackend) -> None:
    ctx = make_ctx(ip="192.0.2.10", mail_from="<>")
    res = ctx.layer("spf")
    assert (res.fact("identity"), res.fact("result")) == ("helo", "pass")


def test_it_gives_temperror_never_pass_when_dns_times_out(zone: r.StaticBackend) -> None:
    ctx = make_ctx(ip="192.0.2.5", mail_from="<a@slow.test>", helo="")
    res = ctx.layer("spf")
    assert res.fact("result") == "temperror"
    assert symbols(ctx, "spf") == {"SPF_TEMPERROR"}


def test_it_exempts_authenticated_and_trusted_senders(zone: r.StaticBackend) -> None:
    assert make_ctx(ip="203.0.113.9", auth_user="alice").layer("spf").fact("exempt") == "authenticated"
    ctx = make_ctx(ip="203.0.113.9", doc={"domains": ["local.test"], "trusted_networks": ["203.0.113.0/24"]})
    assert ctx.layer("spf").fact("exempt") == "trusted_network"
    ctx = make_ctx(ip="203.0.113.9")
    ctx.facts["allowlisted"] = True
    assert ctx.layer("spf").fact("exempt") == "allowlisted" and not ctx.layer("spf").symbols


def test_it_turns_spf_settings_into_policy_rules() -> None:
    layer = layers.get("spf")
    s = layer.Settings(fail_action="refuse", softfail_action="quarantine")  # type: ignore[call-arg]
    rules = {r.name: r for r in layer.policy_rules(s)}
    assert rules["spf_fail"].outcome.action is Action.REJECT and rules["spf_fail"].symbols == ("SPF_FAIL",)
    assert rules["spf_softfail"].outcome.action is Action.QUARANTINE
    assert "spf_temperror" not in rules
    with pytest.raises(ValueError):
        layer.Settings(fail_action="explode")  # type: ignore[call-arg]


# -- DKIM ------------------------------------------------------------------------------------------
def test_it_verifies_rsa_and_ed25519_signatures(keys: KeyStore) -> None:
    raw = signed(keys, signed(keys, message(), selector="ed"))
    ctx = make_ctx(raw)
    res = ctx.layer("dkim")
    assert sorted((s["s"], s["result"]) for s in res.fact("signatures")) == [("ed", "pass"), ("sel1", "pass")]
    assert symbols(ctx, "dkim") == {"DKIM_VALID"}


def test_it_fails_a_signature_over_a_changed_body(keys: KeyStore) -> None:
    raw = signed(keys, message()).replace(b"this is a test", b"this is a tesT")
    ctx = make_ctx(raw)
    assert [s["result"] for s in ctx.layer("dkim").fact("signatures")] == ["fail"]
    assert symbols(ctx, "dkim") == {"DKIM_INVALID"}


def test_it_reports_permerror_without_a_key_and_temperror_on_timeout(keys: KeyStore, zone: r.StaticBackend) -> None:
    raw = signed(keys, message())
    zone.records.pop(("sel1._domainkey.example.test", "TXT"))
    r.get_resolver().clear_cache()
    assert [s.result for s in verify_all(raw)] == ["permerror"]
    zone.add("sel1._domainkey.example.test", "TXT", "TIMEOUT")
    r.get_resolver().clear_cache()  # the negative answer was cached for its TTL
    assert [s.result for s in verify_all(raw)] == ["temperror"]


def test_it_does_not_trust_a_body_beyond_l(keys: KeyStore) -> None:
    raw = signed(keys, message(), length=True)
    appended = raw + b"Unsigned text appended by someone else.\r\n"
    assert [s.result for s in verify_all(raw)] == ["pass"]
    assert [s.result for s in verify_all(appended)] == ["policy"]
    assert [s.result for s in verify_all(appended, length_tag="accept")] == ["pass"]
    ctx = make_ctx(appended)
    assert symbols(ctx, "dkim") == {"DKIM_INVALID", "DKIM_PARTIAL_BODY"}


def test_it_caps_the_number_of_signatures_checked(keys: KeyStore) -> None:
    raw = message()
    for _ in range(8):
        raw = signed(keys, raw)
    assert len(verify_all(raw, max_signatures=3)) == 3


# -- DMARC -----------------------------------------------------------------------------------------
def test_it_passes_dmarc_through_aligned_dkim(keys: KeyStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    ctx = make_ctx(signed(keys, message()), ip="203.0.113.9")  # SPF fails, DKIM aligned
    res = ctx.layer("dmarc")
    assert (res.fact("result"), res.fact("dkim_aligned"), res.fact("spf_aligned")) == ("pass", True, False)
    assert "DMARC_PASS" in symbols(ctx, "dmarc")
    lines = list((tmp_path / "dmarc").glob("*.jsonl"))
    assert lines and '"disposition":"none"' in lines[0].read_text()


def test_it_fails_a_spoofed_from_under_p_reject(zone: r.StaticBackend, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    ctx = make_ctx(message(), ip="203.0.113.9")
    res = ctx.layer("dmarc")
    assert (res.fact("result"), res.fact("policy"), res.fact("disposition")) == ("fail", "reject", "reject")
    assert "DMARC_FAIL_REJECT" in symbols(ctx, "dmarc")
    rules = {r.name: r for r in layers.get("dmarc").policy_rules(ctx.policy.settings_for("dmarc"))}
    assert rules["dmarc_reject"].outcome.action is Action.REJECT


def test_it_applies_sp_for_subdomains_and_handling_settings(zone: r.StaticBackend, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    ctx = make_ctx(message(frm="x@news.example.test"), ip="203.0.113.9")
    res = ctx.layer("dmarc")
    assert (res.fact("policy"), res.fact("policy_domain")) == ("quarantine", "example.test")
    assert "DMARC_FAIL_QUARANTINE" in symbols(ctx, "dmarc")
    doc = {"domains": ["local.test"], "settings": {"dmarc": {"reject_handling": "quarantine"}}}
    ctx = make_ctx(message(), ip="203.0.113.9", doc=doc)
    assert ctx.layer("dmarc").fact("disposition") == "quarantine"
    rules = layers.get("dmarc").policy_rules(ctx.policy.settings_for("dmarc"))
    assert [r.outcome.action for r in rules if "DMARC_FAIL_REJECT" in r.symbols] == [Action.QUARANTINE]


def test_it_gives_dmarc_temperror_on_dns_timeout(zone: r.StaticBackend) -> None:
    ctx = make_ctx(message(frm="a@slow.test"), ip="203.0.113.9", mail_from="<a@slow.test>")
    assert ctx.layer("dmarc").fact("result") == "temperror"
    assert symbols(ctx, "dmarc") == {"DMARC_TEMPERROR"}


def test_it_honours_local_overrides(zone: r.StaticBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    doc = {"domains": ["local.test"], "settings": {"dmarc": {"no_action_domains": ["example.test"]}}}
    ctx = make_ctx(message(), ip="203.0.113.9", doc=doc)
    assert ctx.layer("dmarc").fact("override") == "local_policy"
    assert {"DMARC_LOCAL_OVERRIDE", "DMARC_FAIL_NONE"} <= symbols(ctx, "dmarc")


def test_it_needs_exactly_one_from_address(zone: r.StaticBackend) -> None:
    ctx = make_ctx(message(frm="a@example.test, b@example.test"))
    assert ctx.layer("dmarc").fact("result") == "permerror"


# -- ARC -------------------------------------------------------------------------------------------
def _forwarded(keys: KeyStore, zone: r.StaticBackend, sealer: str = "forwarder.test") -> bytes:
    """A message from example.test that a mailing list sealed and then changed (so DKIM breaks)."""
    zone.add(f"arc._domainkey.{sealer}", "TXT", [keys.generate(sealer, "arc", bits=1024)])
    key = keys.signing_key(sealer, "arc")
    assert key is not None
    original = signed(keys, message())
    ar = (f"Authentication-Results: {sealer}; spf=pass smtp.mailfrom=example.test;\r\n"
          " dkim=pass header.d=example.test; dmarc=pass header.from=example.test\r\n").encode()
    sealed = arc_seal_headers(ar + original, domain=sealer, selector="arc", key=key.private, authserv_id=sealer)
    out = b"".join(h if h.endswith(b"\r\n") else h + b"\r\n" for h in sealed) + ar + original
    return out.replace(b"Subject: Hello", b"Subject: [list] Hello")  # breaks DKIM, not the AMS (it signs the new)


def test_it_overrides_dmarc_failure_for_a_trusted_arc_sealer(keys: KeyStore, zone: r.StaticBackend, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    zone.add("_dmarc.forwarder.test", "TXT", ["v=DMARC1; p=none"])
    raw = _forwarded(keys, zone)
    untrusted = make_ctx(raw, ip="198.51.100.7")
    assert untrusted.layer("dkim").fact("result") == "fail"
    assert untrusted.layer("arc").fact("cv") == "fail"  # subject changed after the seal
    # seal after the change instead (the list modifies, then seals)
    zone2_key = keys.signing_key("forwarder.test", "arc")
    assert zone2_key is not None
    base = signed(keys, message()).replace(b"Subject: Hello", b"Subject: [list] Hello")
    ar = b"Authentication-Results: forwarder.test; dkim=pass header.d=example.test; dmarc=pass\r\n"
    sealed = arc_seal_headers(ar + base, domain="forwarder.test", selector="arc", key=zone2_key.private,
                              authserv_id="forwarder.test")
    raw = b"".join(h if h.endswith(b"\r\n") else h + b"\r\n" for h in sealed) + ar + base
    doc = {"domains": ["local.test"], "settings": {"arc": {"trusted_sealers": ["forwarder.test"]}}}
    ctx = make_ctx(raw, ip="198.51.100.7", doc=doc)
    assert ctx.layer("arc").fact("cv") == "pass" and ctx.layer("arc").fact("trusted_sealer") == "forwarder.test"
    res = ctx.layer("dmarc")
    assert (res.fact("result"), res.fact("override"), res.fact("disposition")) == ("fail", "trusted_forwarder", "none")
    assert "DMARC_FAIL_REJECT" not in symbols(ctx, "dmarc")
    # the same chain from an untrusted sealer changes nothing
    ctx = make_ctx(raw, ip="198.51.100.7")
    assert "DMARC_FAIL_REJECT" in symbols(ctx, "dmarc")


def test_it_gives_dmarc_temperror_only_when_an_aligned_identifier_had_a_dns_error(
        keys: KeyStore, zone: r.StaticBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    raw = signed(keys, message())
    zone.records[("sel1._domainkey.example.test", "TXT")] = "TIMEOUT"
    ctx = make_ctx(raw, ip="203.0.113.9")
    assert ctx.layer("dkim").fact("result") == "temperror"
    assert ctx.layer("dmarc").fact("result") == "temperror"  # the aligned signature might have passed
    # a timeout for a foreign signer's key cannot turn a DMARC fail into temperror
    zone.add("sel1._domainkey.other.test", "TXT", "TIMEOUT")
    key = keys.signing_key("example.test", "sel1")
    assert key is not None
    name, value = sign_message(message(), "other.test", "sel1", key.private, key.algorithm, ["from"])
    foreign = f"{name}: {value}\r\n".replace("\n\t", "\r\n\t").encode() + message()
    ctx = make_ctx(foreign, ip="203.0.113.9")
    assert ctx.layer("dmarc").fact("result") == "fail"


def test_faults_of_a_messages_signatures_are_not_logged_as_errors(keys: KeyStore, caplog: pytest.LogCaptureFixture) -> None:
    """dkimpy logs what it finds wrong in a message (a changed body, a duplicated ARC-Seal) at
    ERROR: on a gateway that is every forged message, not a fault of ours. The results still
    say it; the log says it at DEBUG."""
    from gateway_milter.layers.arc import verify_chain

    raw = signed(keys, message(body="hello"))
    broken = raw.replace(b"hello", b"hullo")
    arc = b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.test; s=s; b=AA==\r\n" * 2
    with caplog.at_level("DEBUG"):
        assert [s.result for s in verify_all(broken)] == ["fail"]
        assert verify_chain(arc + raw).cv == "fail"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert any("Duplicate ARC-Seal" in r.getMessage() for r in caplog.records if r.name == "bulwark.dkimpy")


@pytest.mark.parametrize(("ip", "result"), [("::ffff:192.0.2.5", "pass"), ("fe80::1%eth0", "fail")])
def test_spf_reads_the_client_address_as_parsed(zone: r.StaticBackend, ip: str, result: str) -> None:
    """An IPv4-mapped IPv6 address is checked as its IPv4 address, a link-local one without its
    zone index: the raw string went to pyspf, which failed on the zone index (a layer error)."""
    res = make_ctx(ip=ip).layer("spf")
    assert res.error is None and res.fact("result") == result


@pytest.mark.parametrize("ip", ["unknown", "[192.0.2.5]", "192.0.2.5:25"])
def test_spf_skips_a_client_address_that_is_not_one(zone: r.StaticBackend, ip: str) -> None:
    res = make_ctx(ip=ip).layer("spf")
    assert res.error is None and res.fact("exempt") == "the client address is not an IP address"
