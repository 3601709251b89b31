"""Sender authentication end to end: real Postfix, the real milter daemon, a real knotd
serving the sender zones, and the SMTP sink.

- a spoofed From of a domain with p=reject, sent from an address outside its SPF and
  unsigned, is refused at end of data;
- the same domain's mail forwarded through a list that changed it (DKIM broken) and sealed
  it with ARC is delivered when the sealer is trusted (and refused when it is not);
- inbound mail carries our Authentication-Results, forged ones for our authserv-id removed;
- outbound mail arrives at the sink DKIM-signed, and the signature verifies against DNS.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.auth.keystore import KeyStore
from gateway_milter.layers.dkim import verify_all
from gateway_milter.net import resolver as r
from gateway_milter.transforms.dkimsign import arc_seal_headers, sign_message
from tests.integration.auth import auth_zones
from tests.mailstack import MailStack, mail_stack
from tests.services import knot_server, wait_until

pytestmark = pytest.mark.integration

POLICY: dict[str, Any] = {
    "gateway": {"hostname": "mx.local.test", "authserv_id": "mx.local.test"},
    "settings": {"antivirus": {"mode": "off"}, "arc": {"trusted_sealers": ["forwarder.test"]}},
    "domains": [{"name": "local.test", "settings": {"dkim": {"sign": True}}}],
}


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[MailStack, KeyStore, int]]:
    with tempfile.TemporaryDirectory(prefix="auth-e2e-") as d:
        zones, ks = auth_zones.build(Path(d) / "keys")
        with knot_server(Path(d) / "knot", zones) as knot, \
                mail_stack({"GATEWAY_DNS_SERVERS": f"127.0.0.1:{knot['port']}", "GATEWAY_DNS_TIMEOUT": "1"}) as stack:
            shutil.copytree(Path(d) / "keys" / "local.test", stack.root / "var" / "dkim" / "local.test")
            stack.import_policy(POLICY)
            yield stack, ks, knot["port"]


def msg(subject: str, frm: str = "Alice <alice@example.test>", to: str = "bob@local.test", extra: str = "") -> bytes:
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@example.test>\r\n{extra}\r\nHello Bob,\r\nsee you.\r\n").encode()


def _dkim_sign(ks: KeyStore, raw: bytes) -> bytes:
    key = ks.signing_key("example.test", "sel1")
    assert key is not None
    name, value = sign_message(raw, "example.test", "sel1", key.private, key.algorithm, ["from", "to", "subject", "date"])
    return f"{name}: {value}\r\n".replace("\n\t", "\r\n\t").encode() + raw


def _forwarded(ks: KeyStore, subject: str) -> bytes:
    """Signed by example.test, then the list tags the subject (DKIM breaks) and ARC-seals."""
    original = _dkim_sign(ks, msg(subject))
    changed = original.replace(f"Subject: {subject}".encode(), f"Subject: [list] {subject}".encode())
    ar = (b"Authentication-Results: forwarder.test; spf=pass smtp.mailfrom=example.test;\r\n"
          b" dkim=pass header.d=example.test; dmarc=pass header.from=example.test\r\n")
    key = ks.signing_key("forwarder.test", "arc")
    assert key is not None
    sealed = arc_seal_headers(ar + changed, domain="forwarder.test", selector="arc", key=key.private,
                              authserv_id="forwarder.test")
    return b"".join(h if h.endswith(b"\r\n") else h + b"\r\n" for h in sealed) + ar + changed


def test_it_refuses_a_spoofed_from_under_dmarc_p_reject(env: tuple[MailStack, KeyStore, int]) -> None:
    stack, _, _ = env
    code, text, _ = stack.send("alice@example.test", ["bob@local.test"], msg("spoofed"))
    assert code == 550 and "DMARC" in text, text
    assert not stack.sink.find(b"Subject: spoofed")


def test_it_delivers_a_forwarded_message_with_a_trusted_arc_seal(env: tuple[MailStack, KeyStore, int]) -> None:
    stack, ks, _ = env
    code, text, _ = stack.send("list-bounces@forwarder.test", ["bob@local.test"], _forwarded(ks, "via the list"))
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"[list] via the list"), timeout=30, what="forwarded message")
    [m] = stack.sink.find(b"[list] via the list")
    ar = m.message.get_all("Authentication-Results")
    ours = [v for v in ar if v.strip().lower().startswith("mx.local.test")]
    assert len(ours) == 1
    assert "dmarc=fail" in ours[0] and "override=trusted_forwarder" in ours[0] and "arc=pass" in ours[0]


def test_it_refuses_the_same_forward_when_the_sealer_is_not_trusted(env: tuple[MailStack, KeyStore, int]) -> None:
    stack, ks, _ = env
    stack.import_policy({**POLICY, "settings": {"antivirus": {"mode": "off"}}})
    try:
        code, text, _ = stack.send("list-bounces@forwarder.test", ["bob@local.test"], _forwarded(ks, "untrusted list"))
        assert code == 550, text
    finally:
        stack.import_policy(POLICY)


def test_it_replaces_forged_authentication_results(env: tuple[MailStack, KeyStore, int]) -> None:
    stack, ks, _ = env
    forged = "Authentication-Results: mx.local.test; dkim=pass header.d=paypal.example; dmarc=pass\r\n"
    raw = _dkim_sign(ks, msg("forged ar", extra=forged))
    code, text, _ = stack.send("alice@example.test", ["bob@local.test"], raw)
    assert code == 250, text  # DKIM aligned: DMARC passes although SPF fails for 127.0.0.1
    wait_until(lambda: stack.sink.find(b"Subject: forged ar"), timeout=30)
    [m] = stack.sink.find(b"Subject: forged ar")
    ours = [v for v in m.message.get_all("Authentication-Results") if v.strip().lower().startswith("mx.local.test")]
    assert len(ours) == 1 and "paypal" not in ours[0]
    assert "dkim=pass" in ours[0] and "header.d=example.test" in ours[0] and "dmarc=pass" in ours[0]
    assert "spf=fail" in ours[0]


def test_it_signs_outbound_mail_that_verifies_at_the_sink(env: tuple[MailStack, KeyStore, int]) -> None:
    stack, _, port = env
    stack.import_policy({**POLICY, "trusted_networks": ["127.0.0.1/32"]})
    try:
        code, text, _ = stack.send("bob@local.test", ["carol@remote.example"],
                                   msg("outbound signed", frm="Bob <bob@local.test>", to="carol@remote.example"))
        assert code == 250, text
        wait_until(lambda: stack.sink.find(b"Subject: outbound signed"), timeout=30)
        [m] = stack.sink.find(b"Subject: outbound signed")
        assert m.message["DKIM-Signature"] and "d=local.test" in m.message["DKIM-Signature"]
        res = r.Resolver([("127.0.0.1", port)], timeout=1.0)
        try:
            results = [s.result for s in verify_all(m.data, resolver=res)]
        finally:
            res.close()
        assert results == ["pass"]
    finally:
        stack.import_policy(POLICY)


def test_it_arc_seals_inbound_mail_and_the_seal_validates_at_the_sink(env: tuple[MailStack, KeyStore, int]) -> None:
    from gateway_milter.layers.arc import verify_chain

    stack, ks, port = env
    seal = {"seal": True, "seal_domain": "local.test", "seal_selector": "bulwark1", "trusted_sealers": ["forwarder.test"]}
    stack.import_policy({**POLICY, "settings": {**POLICY["settings"], "arc": seal}})
    try:
        code, text, _ = stack.send("alice@example.test", ["bob@local.test"], _dkim_sign(ks, msg("sealed here")))
        assert code == 250, text
        wait_until(lambda: stack.sink.find(b"Subject: sealed here"), timeout=30)
        [m] = stack.sink.find(b"Subject: sealed here")
        res = r.Resolver([("127.0.0.1", port)], timeout=1.0)
        try:
            chain = verify_chain(m.data, resolver=res)
        finally:
            res.close()
        assert (chain.cv, chain.sealers) == ("pass", ("local.test",)), chain.reason
        assert "dmarc=pass" in chain.aars[0] and "mx.local.test" in chain.aars[0]
    finally:
        stack.import_policy(POLICY)


def test_header_fields_written_without_the_usual_space_keep_their_signature(env: tuple[MailStack, KeyStore, int]) -> None:
    """A signature with simple header canonicalization over fields written as ``Subject:x`` and
    ``Date:<TAB>``: Postfix passes each value as written (the milter asks for SMFIP_HDR_LEADSPC),
    so the signature verifies and DMARC passes; read back as ``Subject: x`` it failed, and
    example.test's p=reject refused the message. Our own header gets its one space."""
    stack, ks, port = env
    raw = (b"From:Alice <alice@example.test>\r\nTo:  bob@local.test\r\nSubject:tight spacing\r\n"
           b"Date:\tSat, 28 Nov 2026 09:00:00 +0000\r\nMessage-ID: <tight@example.test>\r\n\r\nHello Bob.\r\n")
    key = ks.signing_key("example.test", "sel1")
    assert key is not None
    name, value = sign_message(raw, "example.test", "sel1", key.private, key.algorithm,
                               ["from", "to", "subject", "date"], canonicalization="simple/simple")
    signed = f"{name}: {value}\r\n".replace("\n\t", "\r\n\t").encode() + raw
    code, text, _ = stack.send("alice@example.test", ["bob@local.test"], signed)
    assert code == 250, text
    wait_until(lambda: stack.sink.find(b"tight spacing"), timeout=30)
    [m] = stack.sink.find(b"tight spacing")
    assert b"\r\nSubject:tight spacing\r\n" in m.data and b"\r\nDate:\tSat, 28" in m.data and b"\r\nTo:  bob" in m.data
    ours = [v for v in m.message.get_all("Authentication-Results") if v.strip().lower().startswith("mx.local.test")]
    assert len(ours) == 1 and "dkim=pass" in ours[0] and "dmarc=pass" in ours[0], ours
    assert b"\r\nAuthentication-Results: mx.local.test" in m.data  # one space, as before
    res = r.Resolver([("127.0.0.1", port)], timeout=1.0)
    try:
        assert [s.result for s in verify_all(m.data, resolver=res)] == ["pass"]  # and still verifies downstream
    finally:
        res.close()
