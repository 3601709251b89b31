"""A DKIM signature with simple header canonicalization signs each header as written: a header
written without the usual space after its colon (``Subject:x``) or with a tab there must reach
the verifier as it was signed, through the milter (which asks the MTA for that white space) and
through a message file (``manage.py scan``, the evaluation)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import Milter
import pytest

from gateway_milter.antispam.evaluate import make_context
from gateway_milter.auth.keystore import KeyStore
from gateway_milter.context import ConnectionInfo, MessageContext
from gateway_milter.front.milter import BulwarkMilter
from gateway_milter.layers.dkim import verify_all
from gateway_milter.net import resolver as r
from gateway_milter.pipeline.rawmessage import split_message
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.transforms.dkimsign import sign_message

BODY = b"Hi Bob,\r\nthe figures are attached.\r\n"
HEAD = (b"From:Alice <alice@example.test>\r\nTo:  bob@local.test\r\nSubject:quarterly figures\r\n"
        b"Date:\tSat, 28 Nov 2026 09:00:00 +0000\r\nMessage-ID: <m1@example.test>\r\n")


@pytest.fixture()
def keys(tmp_path: Path) -> Iterator[KeyStore]:
    ks = KeyStore(tmp_path / "dkim")
    be = r.StaticBackend({("sel1._domainkey.example.test", "TXT"): [ks.generate("example.test", "sel1", bits=1024)]})
    prev = r.set_resolver(r.Resolver(backend=be, timeout=5.0))
    yield ks
    r.set_resolver(prev)


def _signed(ks: KeyStore, canon: str) -> bytes:
    key = ks.signing_key("example.test", "sel1")
    assert key is not None
    raw = HEAD + b"\r\n" + BODY
    name, value = sign_message(raw, "example.test", "sel1", key.private, key.algorithm,
                               ["from", "to", "subject", "date"], canonicalization=canon)
    return f"{name}: {value}\r\n".replace("\n\t", "\r\n\t").encode() + raw


@pytest.mark.parametrize("canon", ["simple/simple", "relaxed/relaxed"])
def test_the_milter_passes_a_signature_over_headers_written_without_a_space(keys: KeyStore, canon: str) -> None:
    raw = _signed(keys, canon)
    assert [s.result for s in verify_all(raw)] == ["pass"]  # (the message as signed)
    m = BulwarkMilter()
    m.negotiate([Milter.CURR_ACTS, 0x1FFFFF, 0, 0])  # Postfix and Sendmail offer the option
    m.ctx = MessageContext(ConnectionInfo(client_ip="192.0.2.10"), PolicySnapshot.empty())
    headers, body = split_message(raw, verbatim=True)
    for n, v in headers:
        m.header(n, v.encode())
    m.ctx.body.write(body)
    assert [s.result for s in verify_all(m.ctx.raw_bytes())] == ["pass"]


@pytest.mark.parametrize("canon", ["simple/simple", "relaxed/relaxed"])
def test_a_message_file_passes_it_too(keys: KeyStore, canon: str) -> None:
    ctx = make_context(_signed(keys, canon), PolicySnapshot.empty())
    assert [s.result for s in verify_all(ctx.raw_bytes())] == ["pass"]
    assert {s.name for s in ctx.layer("dkim").symbols} == {"DKIM_VALID"}
