#!/usr/bin/env python3
"""Throughput and latency benchmark: smtp-source -> private Postfix (+ milter) -> smtp-sink.

Configurations, measured interleaved in one run so that machine noise hits all of them alike:
  nomilter   Postfix alone
  noop       a no-op pymilter milter (bench/noop_milter.py) on a unix socket: the target's baseline
  noop-nr    the same no-op milter asking for no replies to HELO/DATA/header/body, as Bulwark does
  lists      the Bulwark milter (manage.py runmilter) with lists, size, relay control and the
             message log (journal + database) only: the issue's ">= 85% of no-op" target
  gateway    the Bulwark milter with its default policy (every layer of this build on, except
             antivirus, which needs clamd; DNS-based layers against a hermetic local resolver
             so that they measure our code, not network time-outs)

For each: msgs/s end to end (smtp-source start until the Postfix queue is empty, one message
per SMTP session, 20 parallel sessions) and the per-message latency of DATA..250 over sequential
sends (p50/p99), reported as added latency over Postfix alone.

usage: .venv/bin/python bench/bench.py [--n 2000] [--n-gateway 300] [--rounds 3] [--sessions 20] [--latency 200]
       [--configs nomilter,noop,noop-nr,lists,gateway] [--worker-ingest] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import smtplib
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.postfix_instance import write_instance  # noqa: E402
from tests.services import free_port, traversable_tmpdir, unbound_server, wait_until  # noqa: E402

BENCH_POLICY = """
gateway: {hostname: bench.example.com}
settings:
  antivirus: {mode: "off"}
domains: [{name: example.net}, {name: example.com}]
trusted_networks: []
lists:
  - {list: block, kind: sender, value: "*@spam.example"}
  - {list: block, kind: ip, value: "203.0.113.0/24"}
  - {list: allow, kind: sender, value: "partner@example.org"}
"""

MSG = ("From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: quarterly numbers\r\n"
       "Date: Sat, 28 Nov 2026 09:00:00 +0000\r\nMessage-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\n"
       "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
       + ("The quarterly figures are attached below and the meeting is on Tuesday as planned. " * 56 + "\r\n")
       + "https://www.example.org/report\r\n")


def queue_count(spool: Path) -> int:
    return sum(len(files) for d in ("incoming", "active", "deferred", "hold", "maildrop")
               for _, _, files in os.walk(spool / d))


def postconf(etc: Path, setting: str) -> None:
    subprocess.run(["postconf", "-c", str(etc), "-e", setting], check=True)
    subprocess.run(["postfix", "-c", str(etc), "reload"], check=True, capture_output=True)
    time.sleep(1.5)


def tree_cpu(root_pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        stats[int(d)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo += children.get(pid, [])
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    vals = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = vals[3] + vals[4]
    return (sum(vals) - idle) / tick, sum(vals) / tick


def throughput(port: int, spool: Path, msgfile: Path, n: int, sessions: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(["smtp-source", "-4", "-s", str(sessions), "-m", str(n), "-F", str(msgfile), "-f",
                    "alice@example.org", "-t", "bob@example.net", "-M", "client.example", f"127.0.0.1:{port}"],
                   check=True, capture_output=True)
    deadline = time.time() + 600
    while queue_count(spool) and time.time() < deadline:
        time.sleep(0.02)
    return n / (time.perf_counter() - t0)


def latencies(port: int, k: int) -> list[float]:
    out = []
    data = MSG.encode()
    for _ in range(k):
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.ehlo("client.example")
            s.mail("alice@example.org")
            s.rcpt("bob@example.net")
            t0 = time.perf_counter()
            code, _ = s.data(data)
            out.append((time.perf_counter() - t0) * 1000)
            assert code == 250, code
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-gateway", type=int, default=300,
                    help="messages per round for the default-policy gateway (it is about 20x slower)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--latency", type=int, default=200)
    ap.add_argument("--json", default="")
    ap.add_argument("--configs", default="nomilter,noop,noop-nr,lists,gateway", help="comma-separated subset")
    ap.add_argument("--worker-ingest", action="store_true",
                    help="GATEWAY_MILTER_INGEST=false: a running worker ingests the message log, not the milter")
    a = ap.parse_args()

    with traversable_tmpdir("bulwark-bench-") as root, unbound_server(root / "dns") as dns:
        py = sys.executable
        envs = {}
        for variant in ("lists", "gateway"):
            env = dict(os.environ, GATEWAY_DATA_DIR=str(root / variant), GATEWAY_DNS_SERVERS=f"127.0.0.1:{dns['port']}",
                       DJANGO_SETTINGS_MODULE="config.settings", GATEWAY_LOG_LEVEL="WARNING")
            env.pop("GATEWAY_DATABASE_URL", None)
            subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
            import yaml

            doc = yaml.safe_load(BENCH_POLICY)
            if variant == "lists":
                from gateway_milter import layers

                keep = {"lists", "size", "relay", "direction"}
                doc["settings"].update({lid: {"mode": "off"} for lid in layers.REGISTRY if lid not in keep
                                        and lid in layers.available()})
            (root / f"{variant}.yaml").write_text(yaml.safe_dump(doc))
            subprocess.run([py, "manage.py", "policy", "import", str(root / f"{variant}.yaml")], cwd=ROOT, env=env,
                           check=True, capture_output=True)
            envs[variant] = env
        msgfile = root / "msg5k.eml"
        msgfile.write_bytes(MSG.encode())
        (root / "m").mkdir()
        os.chmod(root / "m", 0o755)
        noop_sock, lists_sock, gw_sock, nr_sock = (root / "m" / f"{n}.sock" for n in ("noop", "lists", "gateway", "noopnr"))
        if a.worker_ingest:
            for v in envs:
                envs[v]["GATEWAY_MILTER_INGEST"] = "false"
        milters = {
            "noop": subprocess.Popen([py, str(ROOT / "bench" / "noop_milter.py"), f"unix:{noop_sock}"], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            "noop-nr": subprocess.Popen([py, str(ROOT / "bench" / "noop_milter.py"), f"unix:{nr_sock}", "noreply"],
                                        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        }
        milters.update({
            v: subprocess.Popen([py, "manage.py", "runmilter", "--socket", f"unix:{sock}"], cwd=ROOT, env=envs[v],
                                stdout=open(root / f"milter-{v}.log", "wb"),  # noqa: SIM115 - lives as long as the milter
                                stderr=subprocess.STDOUT)
            for v, sock in (("lists", lists_sock), ("gateway", gw_sock))
        })
        procs = list(milters.values()) + ([
            # the worker ingests the message log (every 10 s) instead of the milter process
            subprocess.Popen([py, "manage.py", "runworker"], cwd=ROOT, env=envs[v],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for v in envs
        ] if a.worker_ingest else [])
        sink_port, port = free_port(), free_port()
        sink = subprocess.Popen(["smtp-sink", "-u", "postfix", "-4", f"127.0.0.1:{sink_port}", "1000"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pf = root / "pf"
        write_instance(pf, port=port, reinject=free_port(), relay=sink_port, milter="", name="bwbench")
        subprocess.run(["postfix", "-c", str(pf / "etc"), "start"], check=True, capture_output=True)
        try:
            wait_until(lambda: noop_sock.exists() and nr_sock.exists() and lists_sock.exists() and gw_sock.exists(), timeout=60,
                       what="milters")
            wait_until(lambda: smtplib.SMTP("127.0.0.1", port, timeout=2).quit(), timeout=20, what="postfix")
            all_configs = {"nomilter": "", "noop": f"unix:{noop_sock}", "noop-nr": f"unix:{nr_sock}",
                           "lists": f"unix:{lists_sock}",
                           "gateway": f"unix:{gw_sock}"}
            configs = {k: v for k, v in all_configs.items() if k in a.configs.split(",")}
            rates: dict[str, list[float]] = {c: [] for c in configs}
            # CPU milliseconds per message: of the milter's processes, and of the whole machine
            milter_pid = {name: p.pid for name, p in milters.items()}
            cpu_milter: dict[str, list[float]] = {c: [] for c in configs}
            cpu_machine: dict[str, list[float]] = {c: [] for c in configs}
            lats: dict[str, list[float]] = {c: [] for c in configs}
            for r in range(a.rounds):
                for name, milter in configs.items():
                    postconf(pf / "etc", f"smtpd_milters = {milter}")
                    latencies(port, 5)  # warm up
                    m0, (b0, _) = tree_cpu(milter_pid[name]) if name in milter_pid else 0.0, machine_busy()
                    n = a.n_gateway if name == "gateway" else a.n
                    rates[name].append(throughput(port, pf / "spool", msgfile, n, a.sessions))
                    m1, (b1, _) = tree_cpu(milter_pid[name]) if name in milter_pid else 0.0, machine_busy()
                    cpu_milter[name].append((m1 - m0) * 1000 / n)
                    cpu_machine[name].append((b1 - b0) * 1000 / n)
                    lats[name] += latencies(port, a.latency // a.rounds)
                    print(f"round {r + 1} {name:9} {rates[name][-1]:7.1f} msg/s  milter {cpu_milter[name][-1]:.3f} ms CPU/msg"
                          f"  machine {cpu_machine[name][-1]:.3f} ms CPU/msg", flush=True)
            base = "nomilter" if "nomilter" in configs else next(iter(configs))
            base50, base99 = pct(lats[base], 50), pct(lats[base], 99)
            summary = {}
            for name in configs:
                summary[name] = {
                    "msgs_per_s_median": round(statistics.median(rates[name]), 1),
                    "rates": [round(x, 1) for x in rates[name]],
                    "latency_p50_ms": round(pct(lats[name], 50), 2),
                    "latency_p99_ms": round(pct(lats[name], 99), 2),
                    "added_p50_ms": round(pct(lats[name], 50) - base50, 2),
                    "added_p99_ms": round(pct(lats[name], 99) - base99, 2),
                    "milter_cpu_ms_per_msg": round(statistics.median(cpu_milter[name]), 3),
                    "machine_cpu_ms_per_msg": round(statistics.median(cpu_machine[name]), 3),
                }
            for v in ("lists", "gateway", "noop-nr"):
                if v in configs and "noop" in configs:
                    summary[f"{v}_vs_noop"] = round(summary[v]["msgs_per_s_median"]
                                                    / summary["noop"]["msgs_per_s_median"], 3)
                    # configs of one round run back to back: their ratio is robust to machine drift
                    paired = [x / y for x, y in zip(rates[v], rates["noop"], strict=True)]
                    summary[f"{v}_vs_noop_per_round"] = [round(x, 3) for x in paired]
                    summary[f"{v}_vs_noop_paired_median"] = round(statistics.median(paired), 3)
            if "lists" in configs and "noop-nr" in configs:
                summary["lists_vs_noop-nr"] = round(summary["lists"]["msgs_per_s_median"]
                                                    / summary["noop-nr"]["msgs_per_s_median"], 3)
            if "noop" in configs and "nomilter" in configs:
                summary["noop_vs_nomilter"] = round(summary["noop"]["msgs_per_s_median"]
                                                    / summary["nomilter"]["msgs_per_s_median"], 3)
            print(json.dumps(summary, indent=2))
            if a.json:
                Path(a.json).write_text(json.dumps(summary, indent=2))
        finally:
            subprocess.run(["postfix", "-c", str(pf / "etc"), "abort"], capture_output=True)
            sink.terminate()
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
