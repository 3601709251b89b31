"""Cost of the content checks on an ordinary message: MIME parsing + attachment rules + clamd.

A ~5 KB clean message with one small PDF attachment goes through, for each iteration, a fresh
MessageContext: ``ctx.mime`` (parse once), the attachments layer (names, true type, archive
check) and the antivirus layer (INSTREAM of the raw message and of each decoded part).

Usage: .venv/bin/python bench/av_bench.py [-n 500] [--clamd tcp:127.0.0.1:3310]
Without --clamd (and without GATEWAY_CLAMD) a private clamd is started with the test
signatures (tests.services.clamd_server). Target (issue #6): p50 under 20 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway_milter.layers.antivirus import AntivirusLayer, AntivirusSettings
from gateway_milter.layers.attachments import AttachmentLayer, AttachmentSettings
from tests.unit.av.mailbuild import context, with_attachment

TEXT = ("Hello Bob,\r\n\r\nplease find the quarterly figures attached. " * 60)[:3900]
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n" + b"% filler line for a small document\n" * 30 + b"%%EOF\n"


def message() -> bytes:
    return with_attachment(PDF, "figures-q3.pdf", "application/pdf", text=TEXT)


@contextlib.contextmanager
def clamd_servers(arg: str | None) -> Iterator[tuple[str, ...]]:
    spec = arg or os.environ.get("GATEWAY_CLAMD", "")
    if spec:
        yield tuple(s.strip() for s in spec.split(",") if s.strip())
        return
    from tests.services import clamd_server

    with tempfile.TemporaryDirectory() as d, clamd_server(Path(d)) as srv:
        yield (f"unix:{srv['socket']}",)


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=500)
    ap.add_argument("--clamd", help="server list like GATEWAY_CLAMD (default: a private clamd)")
    args = ap.parse_args()
    raw = message()
    att, av = AttachmentLayer(), AntivirusLayer()
    att_s = AttachmentSettings()
    with clamd_servers(args.clamd) as servers:
        av_s = AntivirusSettings(servers=servers)
        totals: list[float] = []
        parse_ms: list[float] = []
        rules_ms: list[float] = []
        clamd_ms: list[float] = []
        for i in range(args.n + 20):
            ctx = context(raw, runner=False)
            t0 = time.perf_counter()
            ctx.mime  # noqa: B018 - the parse is what we time
            t1 = time.perf_counter()
            found = att.check(ctx, att_s)
            t2 = time.perf_counter()
            verdict = av.check(ctx, av_s)
            t3 = time.perf_counter()
            ctx.close()
            assert not found.symbols and verdict.facts["verdict"] == "clean", (found, verdict.facts)
            if i >= 20:  # warm-up: libmagic load, first connections
                parse_ms.append((t1 - t0) * 1000)
                rules_ms.append((t2 - t1) * 1000)
                clamd_ms.append((t3 - t2) * 1000)
                totals.append((t3 - t0) * 1000)
    print(f"message: {len(raw)} bytes, 1 attachment ({len(PDF)} bytes), {args.n} runs, clamd {servers[0]}")
    for name, vals in (("mime parse", parse_ms), ("attachment rules", rules_ms),
                       ("antivirus (clamd, 3 streams)", clamd_ms), ("total", totals)):
        print(f"  {name:30} p50 {statistics.median(vals):7.2f} ms   p95 {percentile(vals, 95):7.2f} ms")
    ok = statistics.median(totals) < 20.0
    print("target p50 < 20 ms:", "met" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
