"""The resolver and the authentication layers against a real knotd on loopback, including
hostile DNS: an 8 KB TXT record (UDP truncation, TCP retry), SPF include loops and too many
lookups, CNAME chains and loops, duplicate records, REFUSED/SERVFAIL and a server that never
answers (timeouts must give temperror, never a pass)."""

from __future__ import annotations

import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.auth.keystore import KeyStore
from gateway_milter.layers.arc import verify_chain
from gateway_milter.layers.dkim import verify_all
from gateway_milter.layers.dmarc import discover
from gateway_milter.layers.spf import check_host
from gateway_milter.net import resolver as r
from gateway_milter.transforms.dkimsign import arc_seal_headers, sign_message
from tests.integration.auth import auth_zones
from tests.services import knot_server
from tests.unit.auth.auth_helpers import make_ctx, message

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def knot() -> Iterator[tuple[dict[str, Any], KeyStore]]:
    with tempfile.TemporaryDirectory(prefix="auth-knot-") as d:
        zones, ks = auth_zones.build(Path(d) / "keys")
        with knot_server(Path(d) / "knot", zones) as info:
            yield info, ks


@pytest.fixture()
def res(knot: tuple[dict[str, Any], KeyStore]) -> Iterator[r.Resolver]:
    resolver = r.Resolver([("127.0.0.1", knot[0]["port"])], timeout=1.0)
    prev = r.set_resolver(resolver)
    yield resolver
    r.set_resolver(prev)
    resolver.close()


@pytest.fixture()
def ks(knot: tuple[dict[str, Any], KeyStore]) -> KeyStore:
    return knot[1]


def test_it_resolves_every_record_type_from_knot(res: r.Resolver) -> None:
    assert res.query_a("mail.example.test").records == ("192.0.2.10",)
    assert res.query_mx("example.test").records == ((10, "mail.example.test"),)
    assert res.query_ptr("192.0.2.10").records == ("mail.example.test",)
    txt = res.query_txt("example.test")
    assert txt.ok and txt.records == ("v=spf1 ip4:192.0.2.0/28 -all",) and txt.ttl == 300
    assert res.query_txt("nothing.example.test").status == r.NXDOMAIN
    assert res.query_aaaa("mail.example.test").status == r.NODATA
    again = res.query_txt("example.test")
    assert again.from_cache


def test_it_reads_a_huge_txt_record_over_tcp(res: r.Resolver) -> None:
    big = res.query_txt("big.hostile.test")
    assert big.ok and len(big.records[0]) > 6000 and len(big.txt_parts[0]) > 20
    # SPF over it still works (and does not match): 400 ip4 mechanisms cost no DNS lookups
    assert check_host("192.0.2.1", "a@big.hostile.test", "x").result == "fail"
    assert check_host("198.18.1.5", "a@big.hostile.test", "x").result == "pass"


def test_it_stops_spf_include_loops_and_lookup_floods(res: r.Resolver) -> None:
    assert check_host("192.0.2.1", "a@loop1.hostile.test", "x").result == "permerror"
    assert check_host("192.0.2.1", "a@many.hostile.test", "x").result == "permerror"  # > 10 lookups
    assert check_host("192.0.2.1", "a@voids.hostile.test", "x").result == "permerror"  # > 2 void lookups
    assert check_host("192.0.2.1", "a@two.hostile.test", "x").result == "permerror"  # two SPF records


def test_it_follows_cname_chains_and_survives_loops(res: r.Resolver) -> None:
    chain = res.query_txt("c15.hostile.test")  # five hops: followed
    assert chain.ok and chain.records == ("v=spf1 +all",)
    assert check_host("192.0.2.1", "a@c15.hostile.test", "x").result == "pass"
    long = res.query_txt("c0.hostile.test")  # twenty hops: cut short, never followed forever
    assert not long.ok
    loop = res.query_txt("cloop1.hostile.test")
    assert not loop.ok  # knot answers the loop; we never spin
    assert check_host("192.0.2.1", "a@cloop1.hostile.test", "x").result in ("none", "temperror")


def test_it_reports_refused_as_servfail_and_spf_temperror(res: r.Resolver) -> None:
    a = res.query_txt("not-served.invalid")
    assert a.status == r.SERVFAIL and a.temporary
    assert check_host("192.0.2.1", "a@not-served.invalid", "x").result == "temperror"


def test_it_times_out_against_a_silent_server_without_a_pass(ks: KeyStore) -> None:
    raw = _signed(ks, message())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        resolver = r.Resolver([("127.0.0.1", port)], timeout=0.3)
        prev = r.set_resolver(resolver)
        try:
            t0 = time.monotonic()
            assert resolver.query_txt("example.test").status == r.TIMEOUT
            assert check_host("192.0.2.1", "a@example.test", "x", timeout=2).result == "temperror"
            assert discover("example.test").status == "temperror"
            assert [s.result for s in verify_all(raw)] == ["temperror"]
            assert time.monotonic() - t0 < 5
        finally:
            r.set_resolver(prev)
            resolver.close()


def test_it_survives_hostile_dkim_keys_and_signature_floods(res: r.Resolver, ks: KeyStore) -> None:
    key = ks.signing_key("example.test", "sel1")
    assert key is not None
    name, value = sign_message(message(), "hostile.test", "junk", key.private, key.algorithm, ["from"])
    junk = f"{name}: {value}\r\n".replace("\n\t", "\r\n\t").encode() + message()
    assert [s.result for s in verify_all(junk)] == ["permerror"]  # 6 KB garbage key over TCP
    flood = message()
    for _ in range(60):
        flood = _signed(ks, flood)
    t0 = time.monotonic()
    sigs = verify_all(flood, max_signatures=5)
    assert [s.result for s in sigs] == ["pass"] * 5 and time.monotonic() - t0 < 2


def test_it_honours_the_message_budget_against_a_real_server(res: r.Resolver) -> None:
    budget = r.DnsBudget(seconds=5, max_queries=2)
    assert res.query_a("h1.hostile.test", budget).ok
    assert res.query_a("h2.hostile.test", budget).ok
    assert res.query_a("h3.hostile.test", budget).status == r.TIMEOUT


def test_it_prefetches_concurrently_from_knot(res: r.Resolver) -> None:
    futs = [res.prefetch(f"h{i}.hostile.test", "A") for i in range(12)]
    assert [f.result(timeout=3).records[0] for f in futs] == [f"198.18.0.{i + 1}" for i in range(12)]


def _signed(ks: KeyStore, raw: bytes, selector: str = "sel1") -> bytes:
    key = ks.signing_key("example.test", selector)
    assert key is not None
    name, value = sign_message(raw, "example.test", selector, key.private, key.algorithm, ["from", "to", "subject"])
    return f"{name}: {value}\r\n".replace("\n\t", "\r\n\t").encode() + raw


def test_it_runs_spf_dkim_dmarc_end_to_end_on_knot_zones(res: r.Resolver, ks: KeyStore, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    raw = _signed(ks, _signed(ks, message(), "ed"))
    ctx = make_ctx(raw, ip="192.0.2.10", helo="mail.example.test")
    assert ctx.layer("spf").fact("result") == "pass"
    assert sorted(s["result"] for s in ctx.layer("dkim").fact("signatures")) == ["pass", "pass"]
    d = ctx.layer("dmarc")
    assert (d.fact("result"), d.fact("spf_aligned"), d.fact("dkim_aligned")) == ("pass", True, True)
    assert ctx.layer("rdns").fact("iprev") == "pass"
    spoof = make_ctx(message(), ip="203.0.113.50", helo="evil.example")
    assert {s.name for s in spoof.layer("dmarc").symbols} >= {"DMARC_FAIL_REJECT"}
    # 203.0.113.0/24 is outside knot's zones: REFUSED, a temporary error, so no symbol
    assert spoof.layer("rdns").fact("iprev") == "temperror" and not spoof.layer("rdns").symbols
    noptr = make_ctx(message(), ip="192.0.2.12", helo="evil.example")
    assert {s.name for s in noptr.layer("rdns").symbols} >= {"RDNS_NONE"}


def test_it_validates_an_arc_chain_against_knot(res: r.Resolver, ks: KeyStore) -> None:
    key = ks.signing_key("forwarder.test", "arc")
    assert key is not None
    base = message()
    ar = b"Authentication-Results: forwarder.test; dkim=pass header.d=example.test; dmarc=pass\r\n"
    sealed = arc_seal_headers(ar + base, domain="forwarder.test", selector="arc", key=key.private,
                              authserv_id="forwarder.test")
    raw = b"".join(h if h.endswith(b"\r\n") else h + b"\r\n" for h in sealed) + ar + base
    assert verify_chain(raw).cv == "pass"
    assert verify_chain(raw.replace(b"this is a test", b"this was a test")).cv == "fail"
