"""Reverse DNS, callback verification, From screening, Authentication-Results, DKIM signing
and the key store."""

from __future__ import annotations

import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.auth.keystore import KeyStore, KeyStoreError, set_keystore, zone_lines
from gateway_milter.layers.callback import callout
from gateway_milter.layers.dkim import verify_all
from gateway_milter.layers.fromscreen import distance, imitates, skeleton
from gateway_milter.net import resolver as r
from gateway_milter.store import set_default_store
from gateway_milter.store.memory import MemoryStore
from gateway_milter.transforms.authresults import authentication_results, authserv_id_of
from gateway_milter.transforms.dkimsign import dkim_sign
from gateway_milter.verdict import Direction, Outcome
from tests.unit.auth.auth_helpers import make_ctx, message


@pytest.fixture()
def zone() -> Iterator[r.StaticBackend]:
    be = r.StaticBackend({
        ("10.2.0.192.in-addr.arpa", "PTR"): ["mail.example.test"],
        ("11.2.0.192.in-addr.arpa", "PTR"): ["liar.example.test"],
        ("mail.example.test", "A"): ["192.0.2.10"],
        ("liar.example.test", "A"): ["192.0.2.99"],
        ("example.test", "MX"): [(10, "mail.example.test")],
        ("example.test", "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all"],
        ("nomx.test", "TXT"): ["v=spf1 -all"],
        ("12.2.0.192.in-addr.arpa", "PTR"): "TIMEOUT",
    })
    prev = r.set_resolver(r.Resolver(backend=be, timeout=5.0))  # generous: it only bounds waits, which a loaded machine stretches
    yield be
    r.set_resolver(prev)


def syms(ctx: Any, layer: str) -> set[str]:
    return {s.name for s in ctx.layer(layer).symbols}


# -- reverse DNS -------------------------------------------------------------------------------------
def test_it_confirms_forward_reverse_dns_and_helo(zone: r.StaticBackend) -> None:
    ctx = make_ctx(ip="192.0.2.10", helo="mail.example.test")
    res = ctx.layer("rdns")
    assert (res.fact("ptr"), res.fact("fcrdns"), res.fact("iprev")) == (["mail.example.test"], True, "pass")
    assert syms(ctx, "rdns") == set()


def test_it_flags_missing_and_unconfirmed_reverse_dns(zone: r.StaticBackend) -> None:
    assert "FCRDNS_FAIL" in syms(make_ctx(ip="192.0.2.11", helo="mail.example.test"), "rdns")
    ctx = make_ctx(ip="198.51.100.1", helo="mail.example.test", mail_from="<a@nomx.test>")
    assert {"RDNS_NONE", "HELO_MISMATCH", "SENDER_DOMAIN_NO_MX"} <= syms(ctx, "rdns")
    assert "HELO_NOT_FQDN" in syms(make_ctx(ip="192.0.2.10", helo="OEMCOMPUTER"), "rdns")
    assert "HELO_LITERAL_MISMATCH" in syms(make_ctx(ip="192.0.2.10", helo="[192.0.2.77]"), "rdns")
    assert "HELO_NO_RESOLVE" in syms(make_ctx(ip="192.0.2.10", helo="ghost.example.test"), "rdns")


def test_it_gives_no_rdns_symbol_on_a_dns_timeout(zone: r.StaticBackend) -> None:
    ctx = make_ctx(ip="192.0.2.12", helo="mail.example.test", mail_from="<a@example.test>")
    res = ctx.layer("rdns")
    assert res.fact("iprev") == "temperror" and "ptr" in res.fact("temperror")
    assert not {"RDNS_NONE", "FCRDNS_FAIL"} & syms(ctx, "rdns")


# -- callback ----------------------------------------------------------------------------------------
class FakeMx:
    """A tiny SMTP server on loopback: knows one mailbox."""

    def __init__(self, known: str, refuse_null: bool = False) -> None:
        self.known, self.refuse_null = known, refuse_null
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.commands: list[str] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as f:
                conn.sendall(b"220 mx ESMTP\r\n")
                for line in f:
                    cmd = line.decode().strip()
                    self.commands.append(cmd)
                    up = cmd.upper()
                    if up.startswith("EHLO"):
                        conn.sendall(b"250-mx\r\n250 PIPELINING\r\n")
                    elif up.startswith("MAIL FROM:<>"):
                        conn.sendall(b"550 no bounces\r\n" if self.refuse_null else b"250 ok\r\n")
                    elif up.startswith("RCPT TO:"):
                        ok = cmd[8:].strip("<> ").lower() == self.known
                        conn.sendall(b"250 ok\r\n" if ok else b"550 5.1.1 no such user\r\n")
                    elif up == "QUIT":
                        conn.sendall(b"221 bye\r\n")
                        break
                    else:
                        conn.sendall(b"502 no\r\n")

    def settled(self, timeout: float = 3.0) -> int:
        """The commands received once the last session has said QUIT: the client may return
        before this thread has read its QUIT, so a count taken at once can be one short."""
        deadline = time.monotonic() + timeout
        while self.commands and self.commands[-1].upper() != "QUIT" and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.commands)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def test_it_verifies_a_sender_by_callback() -> None:
    mx = FakeMx("alice@example.test")
    try:
        assert callout("alice@example.test", ["127.0.0.1"], port=mx.port, timeout=3).result == "pass"
        bad = callout("mallory@example.test", ["127.0.0.1"], port=mx.port, timeout=3)
        assert bad.result == "fail" and bad.reply.startswith("550")
        assert "MAIL FROM:<>" in mx.commands
    finally:
        mx.close()
    from tests.services import free_port

    assert callout("alice@example.test", ["127.0.0.1"], port=free_port(), timeout=1).result == "unknown"
    with pytest.raises(ValueError):
        callout("a@example.test>\r\nDATA", ["127.0.0.1"], port=mx.port)


def test_it_caches_callback_answers_in_the_state_store(zone: r.StaticBackend) -> None:
    mx = FakeMx("alice@example.test")
    zone.add("mail.example.test", "A", ["127.0.0.1"])
    zone.records[("mail.example.test", "A")] = ["127.0.0.1"]
    store = MemoryStore()
    set_default_store(store)
    doc = {"domains": ["local.test"], "settings": {"callback": {"mode": "on", "port": mx.port, "timeout_s": 3,
                                                                "allow_private_targets": True}}}
    try:
        ctx = make_ctx(mail_from="<mallory@example.test>", doc=doc, ip="198.51.100.1")
        assert syms(ctx, "callback") == {"CALLBACK_FAIL"}
        n = mx.settled()
        ctx2 = make_ctx(mail_from="<mallory@example.test>", doc=doc, ip="198.51.100.1")
        assert ctx2.layer("callback").fact("cached") is True and mx.settled() == n
        assert store.get("cb:mallory@example.test") == "fail"
        # by default an MX in loopback/private space is never contacted
        strict = {"domains": ["local.test"], "settings": {"callback": {"mode": "on", "port": mx.port}}}
        ctx3 = make_ctx(mail_from="<other@example.test>", doc=strict, ip="198.51.100.1")
        assert ctx3.layer("callback").fact("result") == "unknown" and mx.settled() == n
    finally:
        set_default_store(None)
        mx.close()


# -- From screening ----------------------------------------------------------------------------------
def test_it_recognises_look_alike_domains() -> None:
    assert skeleton("pаypal") == skeleton("paypal")  # Cyrillic a
    assert distance("bulwark", "bulwrak") == 1
    assert imitates("examp1e.com", ["example.com"]) == "example.com"
    assert imitates("exarnple.com", ["example.com"]) == "example.com"
    assert imitates("xn--exmple-4nf.com", ["example.com"]) == "example.com"  # ex(Cyrillic a)mple.com
    assert imitates("example-login.net", ["example.com"]) == "example.com"
    assert imitates("mail.example.com", ["example.com"]) is None
    assert imitates("totally-different.org", ["example.com"]) is None


def test_it_screens_display_names_and_vips(zone: r.StaticBackend) -> None:
    doc = {"domains": ["local.test"], "settings": {"fromscreen": {"vip_names": ["Jane Doe=jane@local.test"]},
                                                   "dmarc": {"mode": "off"}}}
    ctx = make_ctx(message(frm='"ceo@local.test" <x@evil.example>'), doc=doc)
    assert "FROM_DISPLAY_NAME_SPOOF" in syms(ctx, "fromscreen")
    # the same name unquoted: still a name, and the angle address is the sender (the stdlib
    # parser had read two addresses, the name's first)
    ctx = make_ctx(message(frm="ceo@local.test <x@evil.example>"), doc=doc)
    assert "FROM_DISPLAY_NAME_SPOOF" in syms(ctx, "fromscreen")
    from gateway_milter.mime.headers import address, addresses

    assert address("ceo@local.test <x@evil.example>") == "x@evil.example"
    assert addresses(["a@b.example, ceo@local.test <x@evil.example>"]) == [
        ("", "a@b.example"), ("ceo@local.test", "x@evil.example")]
    ctx = make_ctx(message(frm="Jane Doe <jane.doe@freemail.example>"), doc=doc)
    assert "FROM_VIP_IMPERSONATION" in syms(ctx, "fromscreen")
    ctx = make_ctx(message(frm="Support <help@loca1.test>"), doc=doc)
    assert "FROM_LOOKALIKE" in syms(ctx, "fromscreen")
    ctx = make_ctx(message(frm="Someone <boss@local.test>"), doc=doc)
    assert "FROM_LOCAL_DOMAIN_UNALIGNED" in syms(ctx, "fromscreen")
    ctx = make_ctx(message(frm="Friend <friend@example.test>"), doc=doc)
    assert syms(ctx, "fromscreen") == set()



def test_it_screens_a_from_whose_encoded_word_is_bad_base64(zone: r.StaticBackend) -> None:
    """``=?utf-8?B?xxxxx?=``: five base64 characters cannot be decoded, and the decoder says so
    (HeaderParseError, as the standard library's). The layer raised it, and the milter would
    have tempfailed the message on every try; the name is now screened as it stands."""
    doc = {"domains": ["local.test"], "settings": {"dmarc": {"mode": "off"}}}
    ctx = make_ctx(message(frm="=?utf-8?B?xxxxx?= <boss@local.test>"), doc=doc)
    assert "FROM_LOCAL_DOMAIN_UNALIGNED" in syms(ctx, "fromscreen")
    assert not ctx.layer("fromscreen").error
    # a charset of raw 8-bit bytes (surrogate escapes here): the standard library's Charset
    # refuses it (CharsetError), found by the fuzzing through the whole pipeline
    from gateway_milter.mime.headers import decode_text

    odd = "=?US-A\udcb2\udcbcII?Q?Keith_Moore?= <boss@local.test>"
    assert decode_text(odd) == odd
    assert decode_text("=?utf-8?B?xxxxx?= x") == "=?utf-8?B?xxxxx?= x"
    assert decode_text("=?utf-8?q?caf=C3=A9?= <a@b.example>") == "café <a@b.example>"

# -- Authentication-Results -------------------------------------------------------------------------
def test_it_removes_forged_authentication_results_and_adds_ours(zone: r.StaticBackend) -> None:
    extra = ("Authentication-Results: bulwark.localdomain; spf=pass smtp.mailfrom=forged.example\r\n"
             "Authentication-Results: other.example; dkim=pass\r\n"
             "Authentication-Results: (comment) BULWARK.localdomain 1; dmarc=pass\r\n")
    ctx = make_ctx(message(extra=extra), ip="192.0.2.10", mail_from="<a@example.test>")
    ctx.layer("spf")
    res = authentication_results(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
    assert res is not None
    ops = [(e.op, e.index) for e in res.header_edits]
    assert ops == [("delete", 3), ("delete", 1), ("insert", 0)]
    value = res.header_edits[-1].value
    assert value.startswith("bulwark.localdomain;") and "spf=pass smtp.mailfrom=a@example.test" in value
    assert authserv_id_of("(c) Mx.Example.Org 1; none") == "mx.example.org"
    assert authentication_results(make_ctx(message(), direction=Direction.OUTBOUND), Outcome.accept(), None) is None  # type: ignore[arg-type]


# -- signing and key store ---------------------------------------------------------------------------
def test_it_signs_outbound_mail_that_verifies(tmp_path: Path, zone: r.StaticBackend) -> None:
    ks = KeyStore(tmp_path / "dkim")
    zone.add("bulwark1._domainkey.local.test", "TXT", [ks.generate("local.test", "bulwark1")])
    set_keystore(ks)
    try:
        doc = {"domains": [{"name": "local.test", "settings": {"dkim": {"sign": True}}}]}
        ctx = make_ctx(message(frm="Bob <bob@local.test>", to="x@remote.example"), doc=doc,
                       direction=Direction.OUTBOUND, auth_user="bob")
        res = dkim_sign(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
        assert res is not None and [e.name for e in res.header_edits] == ["DKIM-Signature"]
        sig = res.header_edits[0].value.replace("\n", "\r\n")
        signed = f"DKIM-Signature: {sig}\r\n".encode() + ctx.raw_bytes()
        assert [s.result for s in verify_all(signed)] == ["pass"]
        # inbound mail is not signed; a signing domain without a key tempfails rather than sending unsigned
        assert dkim_sign(make_ctx(message(frm="bob@local.test"), doc=doc), Outcome.accept(), None) is None  # type: ignore[arg-type]
        doc2 = {"domains": [{"name": "other.test", "settings": {"dkim": {"sign": True}}}]}
        with pytest.raises(RuntimeError):
            dkim_sign(make_ctx(message(frm="a@other.test"), doc=doc2, direction=Direction.OUTBOUND),
                      Outcome.accept(), None)  # type: ignore[arg-type]
    finally:
        set_keystore(None)


def test_it_stores_keys_privately_and_rotates_between_two_selectors(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path / "dkim")
    record = ks.generate("example.test", "bulwark1")
    assert record.startswith("v=DKIM1; k=rsa; p=")
    key_file = tmp_path / "dkim" / "example.test" / "bulwark1.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert ks.active_selector("example.test") == "bulwark1"
    sel, rec2 = ks.rotate("example.test")
    assert sel == "bulwark2" and rec2 != record and ks.active_selector("example.test") == "bulwark1"
    ks.activate("example.test", "bulwark2")
    key = ks.signing_key("example.test")
    assert key is not None and key.selector == "bulwark2"
    assert ks.rotate("example.test")[0] == "bulwark1"
    assert '"v=DKIM1; k=rsa; p=' in zone_lines("example.test", "bulwark1", record)
    for bad in ("../etc", "a/b.test", "x..test"):
        with pytest.raises(KeyStoreError):
            ks.generate(bad, "s1")
    with pytest.raises(KeyStoreError):
        ks.generate("example.test", "../x")


def test_it_arc_seals_delivered_mail_when_configured(tmp_path: Path, zone: r.StaticBackend) -> None:
    from gateway_milter.layers.arc import verify_chain

    ks = KeyStore(tmp_path / "dkim")
    zone.add("seal._domainkey.local.test", "TXT", [ks.generate("local.test", "seal", bits=1024)])
    set_keystore(ks)
    try:
        doc = {"domains": ["local.test"], "gateway": {"authserv_id": "mx.local.test"},
               "settings": {"arc": {"seal": True, "seal_domain": "local.test", "seal_selector": "seal"}}}
        ctx = make_ctx(message(frm="alice@example.test"), doc=doc, ip="192.0.2.10", mail_from="<alice@example.test>")
        ctx.layer("spf")
        res = dkim_sign(ctx, Outcome.accept(), None)  # type: ignore[arg-type]
        assert res is not None
        assert [e.name for e in res.header_edits] == ["ARC-Authentication-Results", "ARC-Message-Signature",
                                                      "ARC-Seal"]
        assert ctx.facts["arc_sealed"] == "local.test"
        # apply the inserts as the MTA does (each on top) and validate the chain we built
        raw = ctx.raw_bytes()
        for e in res.header_edits:
            raw = f"{e.name}: {e.value}".replace("\n", "\r\n").encode() + b"\r\n" + raw
        chain = verify_chain(raw)
        assert (chain.cv, chain.sealers) == ("pass", ("local.test",))
        assert "spf=pass" in chain.aars[0] and "mx.local.test" in chain.aars[0]
    finally:
        set_keystore(None)
