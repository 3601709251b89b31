"""CPU cost of SPF + DKIM + DMARC per message with every DNS answer cached.

A ~3 KB message signed by its From domain (RSA 2048 and, with --ed25519, also Ed25519) goes
through a fresh MessageContext each iteration: SPF (MAIL FROM and HELO), DKIM verification
of every signature, and DMARC (discovery, alignment, handling). The zone data is served
through the resolver's test seam and warmed once, so the figure is the per-message CPU of our
code plus pyspf and dkimpy, not network time. Measured with time.process_time (CPU).

Usage: .venv/bin/python bench/auth_bench.py [-n 2000] [--ed25519]
Target (issue #4): under 3 ms CPU per message.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway_milter.auth.keystore import KeyStore
from gateway_milter.net import resolver as r
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.transforms.dkimsign import sign_message
from tests.unit.auth.auth_helpers import make_ctx, message

BODY = ("Hello Bob,\nthe quarterly figures are attached to the shared folder as usual.\n" * 36)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--ed25519", action="store_true", help="add an Ed25519 signature too")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        ks = KeyStore(Path(d))
        be = r.StaticBackend({
            ("example.test", "TXT"): ["v=spf1 ip4:192.0.2.0/28 include:_spf.example.test -all"],
            ("_spf.example.test", "TXT"): ["v=spf1 ip4:198.51.100.0/24 -all"],
            ("mail.example.test", "TXT"): ["v=spf1 a -all"],
            ("mail.example.test", "A"): ["192.0.2.10"],
            ("_dmarc.example.test", "TXT"): ["v=DMARC1; p=reject; adkim=r; aspf=r"],
            ("sel1._domainkey.example.test", "TXT"): [ks.generate("example.test", "sel1", bits=2048)],
            ("ed._domainkey.example.test", "TXT"): [ks.generate("example.test", "ed", "ed25519-sha256")],
        })
        r.set_resolver(r.Resolver(backend=be))
        raw = message(body=BODY)
        for sel in (["ed", "sel1"] if a.ed25519 else ["sel1"]):
            key = ks.signing_key("example.test", sel)
            assert key is not None
            name, value = sign_message(raw, "example.test", sel, key.private, key.algorithm,
                                       ["from", "to", "subject", "date", "message-id"])
            raw = f"{name}: {value}\r\n".replace("\n\t", "\r\n\t").encode() + raw
        # warm the cache and check the answers once
        ctx = make_ctx(raw, ip="203.0.113.9")  # outside SPF: DMARC must pass through DKIM
        assert ctx.layer("spf").fact("result") == "fail"
        assert ctx.layer("dmarc").fact("result") == "pass"
        # one policy snapshot for all messages, as in the milter (settings are parsed once per snapshot)
        policy = PolicySnapshot.from_document({"domains": ["local.test"]})
        samples = []
        for _ in range(a.n):
            ctx = make_ctx(raw, ip="192.0.2.5", policy=policy)
            t0 = time.process_time()
            ctx.layer("spf")
            ctx.layer("dkim")
            res = ctx.layer("dmarc")
            samples.append((time.process_time() - t0) * 1000)
            assert res.fact("result") == "pass"
        samples.sort()
        sigs = "RSA-2048 + Ed25519" if a.ed25519 else "RSA-2048"
        print(f"SPF+DKIM({sigs})+DMARC, answers cached, {len(raw)} bytes, n={a.n}: "
              f"CPU p50 {statistics.median(samples):.2f} ms, p90 {samples[int(len(samples) * 0.9)]:.2f} ms, "
              f"mean {statistics.fmean(samples):.2f} ms (target < 3 ms)")
        print(f"resolver: {r.get_resolver().stats.queries} backend queries, {r.get_resolver().stats.cache_hits} cache hits")


if __name__ == "__main__":
    main()
