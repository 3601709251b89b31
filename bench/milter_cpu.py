#!/usr/bin/env python3
"""CPU per message inside the milter process, without an MTA: the real BulwarkMilter, Gateway,
policy snapshot, journal and (optionally) message-log ingestion, driven by pymilter's TestCtx
with the same 4.9 KB message as bench/bench.py. A complement to bench.py, whose end-to-end
figures move with everything else on the machine; this one isolates our own code.

usage: .venv/bin/python bench/milter_cpu.py [--n 3000] [--policy lists|default] [--profile FILE]
prints CPU ms per message for the callbacks, and for ingesting the resulting log records, and the
garbage collector's runs during the messages.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
from bench import BENCH_POLICY, MSG  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--policy", choices=("lists", "default"), default="lists")
    ap.add_argument("--profile", default="", help="write a cProfile of the callbacks to this file")
    a = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="bulwark-cpu-"))
    os.environ.update(GATEWAY_DATA_DIR=str(data), DJANGO_SETTINGS_MODULE="config.settings", GATEWAY_LOG_LEVEL="WARNING")
    os.environ.pop("GATEWAY_DATABASE_URL", None)
    py = sys.executable
    subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    import yaml

    doc = yaml.safe_load(BENCH_POLICY)
    from gateway_milter import layers

    if a.policy == "lists":
        keep = {"lists", "size", "relay", "direction"}
        doc["settings"].update({lid: {"mode": "off"} for lid in layers.REGISTRY if lid not in keep
                                and lid in layers.available()})
    (data / "policy.yaml").write_text(yaml.safe_dump(doc))
    subprocess.run([py, "manage.py", "policy", "import", str(data / "policy.yaml")], cwd=ROOT, check=True,
                   capture_output=True)

    import django

    django.setup()
    import Milter
    from django.conf import settings
    from Milter.testctx import TestCtx

    from gateway_milter.adapters.django_store import build_gateway, write_log_batch
    from gateway_milter.front.milter import BulwarkMilter
    from gateway_milter.store.msglog import JournalIngestor

    gateway = build_gateway(settings.GATEWAY)
    gateway.policy.start()
    BulwarkMilter.gateway = gateway
    Milter.factory = BulwarkMilter
    # TestCtx ends a session on a no-reply answer: offer no no-reply bits (as the unit tests do)
    NO_REPLY_BITS = Milter.P_NR_CONN | Milter.P_NR_HELO | Milter.P_NR_DATA | Milter.P_NR_HDR | Milter.P_NR_BODY
    TestCtx.default_opts = [Milter.CURR_ACTS, 0x1FFFFF & ~NO_REPLY_BITS, 0, 0]
    raw = MSG.encode()

    def one(i: int) -> None:
        ctx = TestCtx()
        ctx._setsymval("{client_addr}", "198.51.100.5")
        ctx._connect(host="client.example", helo="client.example", ip="198.51.100.5")
        rc = ctx._feedFile(io.BytesIO(raw), "alice@example.org", "bob@example.net")
        ctx._close()
        assert rc == Milter.ACCEPT, rc

    for i in range(200):  # warm caches
        one(i)
    prof = cProfile.Profile() if a.profile else None
    if prof:  # profile end of message in this thread too
        import gateway_milter.front.milter as front

        front.within_budget = lambda stage, fn: fn()  # type: ignore[assignment]
    gc_before = [g["collections"] for g in gc.get_stats()]
    t0 = time.process_time()
    if prof:
        prof.enable()
    for i in range(a.n):
        one(i)
    if prof:
        prof.disable()
        prof.dump_stats(a.profile)
    cb = (time.process_time() - t0) * 1000 / a.n
    # the garbage collector's runs per generation meanwhile: with no reference cycles made per
    # message, only the objects that live on trigger one
    collections = [g["collections"] - b for g, b in zip(gc.get_stats(), gc_before, strict=True)]
    gateway.log_sink.close()
    ingestor = JournalIngestor(settings.GATEWAY.journal_dir, write_log_batch)
    iprof = cProfile.Profile() if a.profile else None
    t0 = time.process_time()
    if iprof:
        iprof.enable()
    n = ingestor.run_once()
    if iprof:
        iprof.disable()
        iprof.dump_stats(a.profile + ".ingest")
    ing = (time.process_time() - t0) * 1000 / max(n, 1)
    print(f"policy {a.policy}: callbacks {cb:.3f} ms CPU/msg; ingestion {ing:.3f} ms CPU/record ({n} records); "
          f"garbage collections during the {a.n} messages, by generation: {collections}")
    gateway.policy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
