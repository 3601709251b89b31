"""CPU per message of the content path (rules + Bayes + scoring through the real layers) on
corpus messages of 4-6 KB (spam_2 and easy_ham in turn), Bayes trained on 200 spam and 200 ham
first (MemoryStore: the store's network time is not CPU; --redis URL reads and learns in a real
Redis instead, so the figure includes the client's side of production's round trip; --sqlite in
the embedded SQLite store, the default deployment's, through its read cache).

Usage: .venv/bin/python bench/antispam_cpu.py [--n 150] [--no-rules] [--min-size 4000 --max-size 6000]
[--reference] [--no-hyperscan] [--repeat 5] [--only spam|ham] [--parts] [--rule-costs] [--redis URL | --sqlite]
[--against OTHER_CHECKOUT [--other-python | --other-compiled-dir DIR]] [--instructions]

--reference: every rule's expression over the whole text, no laziness or prefilter (the
equivalence tests' reference path); --no-hyperscan: the Python prefilters (and RE2) only.
Otherwise the Hyperscan databases are loaded from, or first built into, GATEWAY_RULES_CACHE_DIR,
and the build is not counted. A message's CPU is the least of --repeat passes
(``pass_cpu_ms_per_message``: the least pass's CPU as a whole, per message, garbage collection
included); --only times one
class alone; --parts adds each part's median (view, Bayes, rules), timed apart; --rule-costs adds
each rule function's own time in a further pass (RuleTimer: where the rules part goes, by kind
and by rule).

--against OTHER_CHECKOUT compares two versions of the code on the same messages: one worker
process per checkout (this script, with that checkout's packages), taking turns message by
message (the order within each pair alternating), so that a machine whose speed drifts by tens
of per cent within minutes slows both alike. It prints both medians and the median ratio of
this checkout's CPU to the other's, per message. Every run also prints the CPU of a fixed
pure-Python loop (``reference_loop_ms``): figures from different machines compare only
through it.

Every run says which code ran (``code``: the compiled modules or Python, and why;
gateway_milter/compiled.py). ``--against . --other-python`` times this checkout's compiled
modules against its own Python, message by message. Two checkouts whose compiled modules
differ each need their own build: ``--other-compiled-dir`` names the other's
(``BULWARK_COMPILED_DIR=DIR .venv/bin/python OTHER/scripts/compiled.py build``).

--instructions counts instructions instead (valgrind's callgrind, counting only while the
worker runs each message once, after a pass that warms every cache): nearly the same count on
any machine and under any load (two checkouts of the same code: 28.55 and 28.61 million a
message, 0.2 % apart), where the timings here vary by tens of per cent within minutes. Python's
own allocator is kept and the rule files are not looked at while counting (with
PYTHONMALLOC=malloc, allocation weighed several times its cost in time). With --against
both checkouts are counted, one after the other, and ``ratio`` is this one's over the other's. Instructions are not time
(cache misses, branch mispredictions): the target is still read off the timings. About four
minutes per checkout for 150 messages (the rule set loads under valgrind first).

Every run prints the interpreter (``python``: version, path, and whether it runs on a shared
libpython); ``--against . --other-interpreter VENV/bin/python`` times two interpreters on the
same code (a virtualenv with the requirements and its own compiled build): Debian's
/usr/bin/python3.11 against a plain source build of 3.11.7 read 7.2 % fewer instructions and
about 9 % less CPU in the median of six paired rounds (docs/decisions/0063-debian-python.md).

The benchmark runs with the milter's allocator setting (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``,
systemd/bulwark-milter.service: large allocations on 2 MB pages, docs/decisions/0067-huge-pages.md),
starting itself again with it when it was not given; ``--malloc-default`` runs without it. The
setting is printed (``malloc``).

``bench/`` runs against the checkout it sits in; ``--root`` (used by --against) points it at
another.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from typing import Any
from pathlib import Path

# which checkout's packages the imports below load: this one, or --root's (a worker of --against)
sys.path.insert(0, str(Path(sys.argv[sys.argv.index("--root") + 1] if "--root" in sys.argv else Path(__file__).parent.parent)
                       .resolve()))

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.evaluate import make_context
from gateway_milter.antispam.saview import message_view
from gateway_milter.compiled import status as compiled_status
from gateway_milter.layers.rules import RulesSettings, engine_from_settings
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store import StateStore, set_default_store
from gateway_milter.store.memory import MemoryStore
from gateway_milter.store.redisstore import RedisStore
from gateway_milter.store.sqlitestore import SqliteStore

from tests.services import shared_path

# the milter's allocator setting (systemd/bulwark-milter.service, scripts/run.sh): the C library
# backs its large allocations (the Hyperscan databases above all) with 2 MB pages
# (docs/decisions/0067-huge-pages.md); the benchmark runs with it unless --malloc-default
MALLOC_TUNABLE = "glibc.malloc.hugetlb=1"

ROOT = Path(sys.path[0])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--no-rules", action="store_true")
    ap.add_argument("--redis", metavar="URL",
                    help="Bayes reads and learns in this Redis (production's store; its Bayes keys are "
                         "deleted first) instead of in memory: the CPU then includes the client's part "
                         "of the round trip")
    ap.add_argument("--sqlite", action="store_true",
                    help="Bayes reads and learns in the embedded SQLite store (the default deployment's), in a"
                         " temporary file, through the read cache it ships with (bayes.FieldCache)")
    ap.add_argument("--skip", default="", help="comma-separated rules.skip_rules")
    ap.add_argument("--malloc-default", action="store_true",
                    help="run with the C library's default allocator settings instead of the milter's"
                         f" ({MALLOC_TUNABLE}, systemd/bulwark-milter.service)")
    ap.add_argument("--min-size", type=int, default=4000)
    ap.add_argument("--max-size", type=int, default=6000)
    ap.add_argument("--reference", action="store_true", help="run the rules engine's reference path")
    ap.add_argument("--no-hyperscan", action="store_true", help="Python prefilters only")
    ap.add_argument("--repeat", type=int, default=5, help="passes; a message's CPU is its least")
    ap.add_argument("--only", choices=("spam", "ham"), help="time one class alone (Bayes still learns both)")
    ap.add_argument("--parts", action="store_true",
                    help="also time the parts apart: the message view (with its MIME parse), Bayes, the rules")
    ap.add_argument("--rule-costs", action="store_true",
                    help="also time each rule function apart in a further pass (its own time, less the rules it"
                         " asked for): per kind and the costliest rules")
    ap.add_argument("--against", default="", help="another checkout: compare, message by message, in turns")
    ap.add_argument("--rounds", type=int, default=1,
                    help="with --against: rounds of two fresh workers (each round's hash seed: the next)")
    ap.add_argument("--other-python", action="store_true",
                    help="with --against: the other worker runs as Python (BULWARK_COMPILED=0; --against . compares"
                         " this checkout's compiled modules with its own Python)")
    ap.add_argument("--other-compiled-dir", default="",
                    help="with --against: the other worker's build of the compiled modules (BULWARK_COMPILED_DIR;"
                         " build it with that checkout's scripts/compiled.py build and the same variable)")
    ap.add_argument("--other-interpreter", default="",
                    help="with --against: the other worker's Python (a virtualenv's bin/python with the requirements"
                         " and its own compiled build, e.g. one made from Debian's /usr/bin/python3.11; --against ."
                         " compares two interpreters on the same code)")
    ap.add_argument("--seed", type=int, default=-1,
                    help="with --against: the first round's PYTHONHASHSEED (default: random; 0 with --instructions)")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions instead of timing (valgrind's callgrind: nearly the same count on any"
                         " machine and under any load; with --against, both checkouts one after the other)")
    ap.add_argument("--count-worker", action="store_true", help=argparse.SUPPRESS)  # runs under callgrind
    ap.add_argument("--root", default="", help=argparse.SUPPRESS)  # read before the imports (ROOT)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # a worker of --against
    args = ap.parse_args()
    if not args.malloc_default and MALLOC_TUNABLE not in os.environ.get("GLIBC_TUNABLES", "").split(":"):
        # the milter's allocator setting, read by the C library when a process starts: this
        # process again with it (its workers inherit it)
        env = {**os.environ, "GLIBC_TUNABLES": ":".join(filter(None, (os.environ.get("GLIBC_TUNABLES"), MALLOC_TUNABLE)))}
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    if args.redis and (args.against or args.instructions):
        ap.error("--redis times one checkout (two workers would share its keys)")
    if args.redis and args.sqlite:
        ap.error("--redis or --sqlite, not both")
    if args.instructions and not args.count_worker:
        return count_instructions(args)
    if args.against and not args.serve:  # (a worker never starts workers of its own: --against=PATH reaches it too)
        return compare(args)
    base = shared_path("corpus", "spamassassin")
    if not base.is_dir():
        print(f"{base} not present", file=sys.stderr)
        return 2
    # half spam, half ham, in turn; Bayes learns 200 of each of the others (min_learned is 50 of
    # each, so every message goes through the whole classifier)
    by_dir = [sorted((base / d).iterdir()) for d in ("spam_2", "easy_ham")]
    sized = [[p for p in files if args.min_size <= os.path.getsize(p) <= args.max_size] for files in by_dir]
    if args.only:  # one class alone, as many messages
        sized = [sized[0] if args.only == "spam" else sized[1]]
        pick = sized[0][: args.n]
    else:
        pick = [p for pair in zip(*(s[: (args.n + 1) // 2] for s in sized), strict=False) for p in pair][: args.n]
    chosen = set(pick)
    train = [p for files in by_dir for p in [q for q in files if q not in chosen][:200]]
    store: StateStore = MemoryStore()
    if args.redis:
        rs = RedisStore(args.redis)
        for k in rs.scan_keys("bayes", limit=10_000):
            rs.delete(k)
        store = rs
    if args.sqlite:  # (each worker of --against its own file)
        import atexit
        import shutil
        import tempfile

        tmp = tempfile.mkdtemp(prefix="bulwark-bench-")
        atexit.register(shutil.rmtree, tmp, True)
        store = SqliteStore(Path(tmp) / "state.sqlite3")
    set_default_store(store)
    layers = ["bayes"] if args.no_rules else ["rules", "bayes"]
    skip = [x for x in args.skip.split(",") if x]
    policy = PolicySnapshot.from_document({"settings": {"scoring": {"layers": layers}, "rules": {"skip_rules": skip},
                                                        "bayes": {"min_learned": 50, "autolearn": False}}})
    bc = BayesClassifier(store, 50)
    for p in train:
        bc.learn(message_view(make_context(p.read_bytes(), policy)), "spam" in p.parent.name)
    if args.no_hyperscan:
        os.environ["GATEWAY_RULES_HYPERSCAN"] = "0"
    t0 = time.process_time()
    hyperscan = False
    if not args.no_rules:
        engine = engine_from_settings(RulesSettings(skip_rules=tuple(skip)))
        load_s = time.process_time() - t0
        hyperscan = engine.hyperscan(None) is not None
        if args.reference:
            plain_run = engine.run
            engine.run = lambda m, extra=None, lazy=True: plain_run(m, extra, lazy=False)  # type: ignore[method-assign]
    else:
        load_s = time.process_time() - t0
    raws = [p.read_bytes() for p in pick]
    for raw in raws[:10]:  # warm caches
        make_context(raw, policy).layer("scoring")
    if args.count_worker:  # under callgrind: one pass to warm every cache, then the counted one
        # the rule files are looked at once a second (engine_for): under valgrind that is every
        # few messages instead of every few hundred, so not while counting
        from gateway_milter.antispam import engine as engine_module
        engine_module.RECHECK_S = float("inf")
        for raw in raws:
            make_context(raw, policy).layer("scoring")
        print(f"ready {len(raws)} {compiled_status()}", flush=True)
        sys.stdin.readline()  # the parent turns the counting on, then says go
        for raw in raws:
            make_context(raw, policy).layer("scoring")
        print("done", flush=True)
        sys.stdin.readline()  # the parent turns it off before this process exits
        return 0
    if args.serve:  # a worker of --against: a message's index in, its CPU out
        print(f"ready {len(raws)} {compiled_status()}", flush=True)
        for line in sys.stdin:
            ctx = make_context(raws[int(line)], policy)
            t = time.process_time()
            ctx.layer("scoring")
            print((time.process_time() - t) * 1000, flush=True)
        return 0
    # each message's CPU is the least of --repeat passes (a fresh context each time: all the
    # work is done again): interrupts and a neighbour's load only ever add time
    best = [float("inf")] * len(raws)
    # and each pass's CPU as a whole, per message: what a process that scans a stream of
    # messages pays, the garbage collector's runs included (a message's least CPU leaves them
    # out, as it leaves out interrupts)
    pass_ms: list[float] = []
    gc_before = [g["collections"] for g in gc.get_stats()]
    for _ in range(args.repeat):
        p0 = time.process_time()
        for i, raw in enumerate(raws):
            ctx = make_context(raw, policy)
            t = time.process_time()
            ctx.layer("scoring")
            best[i] = min(best[i], (time.process_time() - t) * 1000)
        pass_ms.append((time.process_time() - p0) * 1000 / len(raws))
    collections = [g["collections"] - b for g, b in zip(gc.get_stats(), gc_before, strict=True)]
    cpu = sorted(best)
    parts = time_parts(raws, policy, bc, engine if not args.no_rules else None, args.repeat) if args.parts else None
    costs = rule_costs(raws, policy, engine, args.repeat) if args.rule_costs and not args.no_rules else None
    classified = sum(bc.classify(message_view(make_context(raw, policy))).probability is not None for raw in raws)
    print(json.dumps({"messages": len(cpu), "layers": layers, "rule_load_cpu_s": round(load_s, 2),
                      "code": compiled_status(), "python": python_build(), "malloc": malloc_setting(),
                      "store": "redis" if args.redis else "sqlite" if args.sqlite else "memory",
                      "hyperscan": hyperscan, "reference": args.reference, "repeat": args.repeat,
                      "sizes": [args.min_size, args.max_size],
                      "spam": sum("spam" in p.parent.name for p in pick), "ham": sum("ham" in p.parent.name for p in pick),
                      "bayes_classified": classified,
                      "cpu_ms_median": round(cpu[len(cpu) // 2], 2), "cpu_ms_p90": round(cpu[int(len(cpu) * .9)], 2),
                      "cpu_ms_p95": round(cpu[int(len(cpu) * .95)], 2),
                      "cpu_ms_mean": round(sum(cpu) / len(cpu), 2),
                      "pass_cpu_ms_per_message": round(min(pass_ms), 2),
                      "gc_collections_in_passes": collections,
                      "reference_loop_ms": reference_loop_ms(),
                      **({"parts_ms_median": parts} if parts else {}),
                      **({"rule_costs": costs} if costs else {})},
                     indent=2))
    return 0


def time_parts(raws: list[bytes], policy: PolicySnapshot, bc: BayesClassifier, engine: Any,
               repeat: int) -> dict[str, float]:
    """--parts: each message's least CPU per part over the passes, their medians: the view
    (MIME parse, decoding, HTML rendering), Bayes (tokens, keys, store, combining) and the
    rules engine (Hyperscan pass, rules, metas) on that view. The layers around them (runner,
    scoring) are the whole figure less these."""
    names = ("view", "bayes", "rules")
    best = {k: [float("inf")] * len(raws) for k in names}
    for _ in range(repeat):
        for i, raw in enumerate(raws):
            ctx = make_context(raw, policy)
            t0 = time.process_time()
            view = message_view(ctx)
            t1 = time.process_time()
            p = bc.classify(view).probability
            t2 = time.process_time()
            if engine is not None:
                engine.run(view, {"bayes_probability": p} if p is not None else None)
            t3 = time.process_time()
            for k, took in zip(names, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                best[k][i] = min(best[k][i], took * 1000)
    return {k: round(sorted(v)[len(v) // 2], 3) for k, v in best.items()}


class RuleTimer:
    """--rule-costs: each rule function's own time (``clock``'s, in-process wall time: a
    process-CPU clock costs a system call a reading), that is its time less the time of the
    rules it asked for through ``v`` and less what timing those cost (``overhead`` a call,
    measured on an empty function). Rules are wrapped where the engine calls them: its rule
    functions (metas and the rules only a meta asks for, computed lazily), the scored plain
    rules it runs for every message, and the function of all scored metas."""

    def __init__(self, clock: Any = time.perf_counter) -> None:
        self.clock = clock
        self.own: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.hits: dict[str, int] = {}
        self.overhead = 0.0
        self._stack: list[list[float]] = [[0.0, 0.0]]  # per open call: children's time, children

    def wrap(self, name: str, fn: Any) -> Any:
        clock, stack, own, calls, hits = self.clock, self._stack, self.own, self.calls, self.hits

        def timed(*a: Any) -> Any:
            stack.append([0.0, 0.0])
            t0 = clock()
            r = fn(*a)
            took = clock() - t0
            child, n = stack.pop()
            own[name] = own.get(name, 0.0) + took - child - n * self.overhead
            calls[name] = calls.get(name, 0) + 1
            hits[name] = hits.get(name, 0) + bool(r)
            stack[-1][0] += took
            stack[-1][1] += 1
            return r
        return timed

    def calibrate(self, rounds: int = 20000) -> float:
        """The time a timed call adds to its caller beyond the callee's own: an empty function
        called through ``wrap`` against called directly (least of five)."""
        def empty(*a: Any) -> int:
            return 0
        wrapped = self.wrap("(calibration)", empty)
        best = float("inf")
        for _ in range(5):
            t0 = self.clock()
            for _ in range(rounds):
                wrapped(None)
            t1 = self.clock()
            for _ in range(rounds):
                empty(None)
            t2 = self.clock()
            best = min(best, ((t1 - t0) - (t2 - t1)) / rounds)
        for d in (self.own, self.calls, self.hits):
            d.pop("(calibration)", None)
        self.overhead = max(best, 0.0)
        return self.overhead

    def report(self, kind_of: Any, messages: int, top: int = 25) -> dict[str, Any]:
        """Microseconds a message by kind (``kind_of(name)``) and for the ``top`` costliest rules."""
        n = max(messages, 1)
        kinds: dict[str, list[float]] = {}
        for name, t in self.own.items():
            k = kinds.setdefault(kind_of(name), [0.0, 0.0])
            k[0] += t
            k[1] += self.calls[name]
        by_kind = [{"kind": k, "us_per_message": round(t / n * 1e6, 1), "calls_per_message": round(c / n, 1),
                    "us_per_call": round(t / c * 1e6, 2) if c else 0.0}
                   for k, (t, c) in sorted(kinds.items(), key=lambda kv: -kv[1][0])]
        rules = [{"rule": name, "kind": kind_of(name), "us_per_message": round(t / n * 1e6, 1),
                  "calls_per_message": round(self.calls[name] / n, 2),
                  "hits_per_message": round(self.hits[name] / n, 2)}
                 for name, t in sorted(self.own.items(), key=lambda kv: -kv[1])[:top]]
        return {"messages": messages, "timing_overhead_us_per_call": round(self.overhead * 1e6, 3),
                "total_us_per_message": round(sum(self.own.values()) / n * 1e6, 1),
                "by_kind": by_kind, "costliest": rules}


def rule_costs(raws: list[bytes], policy: PolicySnapshot, engine: Any, repeat: int) -> dict[str, Any]:
    """--rule-costs: a pass of the messages (``repeat`` times) with every rule function of the
    engine timed apart (RuleTimer); the engine's functions are put back afterwards."""
    timer = RuleTimer()
    timer.calibrate()
    fns, plain, allmetas = dict(engine._fns), list(engine._plain_root_fns), engine._allmetas
    try:
        for name, fn in fns.items():
            engine._fns[name] = timer.wrap(name, fn)
        engine._plain_root_fns = [(name, timer.wrap(name, fn)) for name, fn in plain]
        engine._allmetas = timer.wrap("(the scored metas)", allmetas)
        for _ in range(repeat):
            for raw in raws:
                make_context(raw, policy).layer("scoring")
    finally:
        engine._fns.clear()
        engine._fns.update(fns)
        engine._plain_root_fns, engine._allmetas = plain, allmetas

    def kind_of(name: str) -> str:
        r = engine.rules.get(name)
        if r is None:
            return "meta"  # (the scored metas' function)
        return f"{r.kind} eval" if r.eval_fn else r.kind
    return timer.report(kind_of, len(raws) * repeat)


def count_instructions(args: argparse.Namespace) -> int:
    """--instructions: this checkout's worker (and --against's) under callgrind, counting only
    while it runs the messages once (after a pass that warms every cache); instructions per
    message. A fixed PYTHONHASHSEED makes the count repeatable; Python's own allocator is kept
    (PYTHONMALLOC=malloc made allocation-heavy code weigh several times what it costs in time)."""
    import shutil
    import subprocess
    import tempfile

    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind (with callgrind_control) is not installed", file=sys.stderr)
        return 2
    passed = worker_args(("--instructions",))
    seed = args.seed if args.seed >= 0 else 0
    runs: list[tuple[Path, dict[str, str], str]] = [(ROOT, {}, sys.executable)]
    if args.against:
        runs.append((Path(args.against).resolve(), other_env(args), other_python(args)))
    out: dict[str, Any] = {"seed": seed}
    counts = []
    for label, (root, extra, python) in zip(("this", "other"), runs, strict=False):
        with tempfile.TemporaryDirectory(prefix="bulwark-cg-") as tmp:
            cg = Path(tmp) / "callgrind.out"
            cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={cg}",
                   python, str(Path(__file__).resolve()), *passed, "--count-worker", "--root", str(root)]
            env = {**os.environ, "PYTHONHASHSEED": str(seed), **extra}
            w = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True, env=env)
            assert w.stdin is not None and w.stdout is not None
            line = w.stdout.readline()
            while line and not line.startswith("ready "):
                line = w.stdout.readline()
            if not line:
                print(f"the {label} worker did not start", file=sys.stderr)
                return 2
            n, code = int(line.split()[1]), line.split(" ", 2)[2].strip()
            subprocess.run(["callgrind_control", "-i", "on", str(w.pid)], capture_output=True, check=True)
            w.stdin.write("go\n")
            w.stdin.flush()
            while (line := w.stdout.readline()) and line.strip() != "done":
                pass
            subprocess.run(["callgrind_control", "-i", "off", str(w.pid)], capture_output=True, check=True)
            w.stdin.close()
            w.wait()
            total = callgrind_total(cg)
        counts.append(total / n)
        out[label] = str(root)
        out[f"{label}_code"] = code
        out[f"{label}_instructions_per_message"] = round(total / n)
        out["messages"] = n
    if len(counts) == 2:
        out["ratio"] = round(counts[0] / counts[1], 4)
    print(json.dumps(out, indent=2))
    return 0


def callgrind_total(path: Path) -> int:
    """The instructions a callgrind output file counted: its ``totals:`` line (the ``summary:``
    at its head reads 0 when counting was off at the start), files of several parts added up."""
    total = 0
    for p in sorted(path.parent.glob(path.name + "*")):
        lines = p.read_text(errors="replace").splitlines()
        found = [int(x.split()[1]) for x in lines if x.startswith("totals:")]
        found = found or [int(x.split()[1]) for x in lines if x.startswith("summary:")]
        total += max(found, default=0)
    return total


def reference_loop_ms() -> float:
    """CPU of a fixed pure-Python loop (best of 5): how fast this machine runs Python now."""
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.process_time() - t)
    return round(best * 1000, 1)


def other_env(args: argparse.Namespace) -> dict[str, str]:
    """What the other checkout's worker runs with: as Python (--other-python), or its own
    compiled build (--other-compiled-dir)."""
    env = {"BULWARK_COMPILED": "0"} if args.other_python else {}
    if args.other_compiled_dir:
        env["BULWARK_COMPILED_DIR"] = args.other_compiled_dir
    return env


def python_build() -> str:
    """The interpreter: version, path, and whether it runs on a shared libpython (a plain
    ``./configure --enable-shared && make``, as pyenv builds) or has the interpreter linked into
    the executable (Debian's /usr/bin/python3.11, built with profile-guided and link-time
    optimisation): the same code runs at different speeds on the two
    (docs/decisions/0063-debian-python.md)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    linked = "shared libpython" if "libpython" in maps else "libpython in the executable"
    return f"{platform.python_version()} {sys.executable} ({linked})"


def malloc_setting() -> str:
    """The C library's allocator settings this process started with (GLIBC_TUNABLES)."""
    return os.environ.get("GLIBC_TUNABLES") or "default"


def other_python(args: argparse.Namespace) -> str:
    """The other worker's interpreter: --other-interpreter, or this one."""
    return args.other_interpreter or sys.executable


def worker_args(drop: tuple[str, ...] = ()) -> list[str]:
    """The options for a worker: this command's, but the ones that only the parent reads (each
    with its value) and ``drop``."""
    own = ("--against", "--rounds", "--seed", "--other-compiled-dir", "--other-interpreter")
    passed: list[str] = []
    argv = iter(sys.argv[1:])
    for a in argv:
        if a in own:
            next(argv, None)
        elif a != "--other-python" and a not in drop and not a.startswith(tuple(o + "=" for o in own)):
            passed.append(a)
    return passed


def compare(args: argparse.Namespace) -> int:
    """--against: two workers, this checkout's and the other's, time the same messages in turns."""
    import statistics

    passed = worker_args()
    seed0 = args.seed if args.seed >= 0 else int.from_bytes(os.urandom(2), "big")
    rounds = []
    for r in range(max(1, args.rounds)):
        res = _compare_round(args, passed, seed0 + r)
        if res is None:
            return 2
        rounds.append(res)
    if len(rounds) == 1:
        print(json.dumps(rounds[0], indent=2))
        return 0
    print(json.dumps({"rounds": rounds,
                      "ratio_median_of_rounds": round(statistics.median(x["ratio_median"] for x in rounds), 4),
                      "ratio_of_sums_of_rounds": round(statistics.median(x["ratio_of_sums"] for x in rounds), 4)},
                     indent=2))
    return 0


def _compare_round(args: argparse.Namespace, passed: list[str], seed: int) -> dict[str, Any] | None:
    """One round: two fresh workers with the same PYTHONHASHSEED (a process's string hashes set
    the layout of its sets and dicts and the order it walks them in: two processes of the same
    code read 0.99-1.03 of each other with their own seeds, 4 runs; 0.98-1.00 with one, 3 runs)."""
    import statistics
    import subprocess

    workers = []
    for k, root in enumerate((ROOT, Path(args.against).resolve())):
        cmd = [other_python(args) if k == 1 else sys.executable, str(Path(__file__).resolve()), *passed, "--serve",
               "--root", str(root)]
        env = {**os.environ, "PYTHONHASHSEED": str(seed), **(other_env(args) if k == 1 else {})}
        workers.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env))
    sizes, codes = [], []
    for w in workers:
        assert w.stdout is not None
        line = w.stdout.readline()
        while line and not line.startswith("ready "):  # (anything printed while loading)
            line = w.stdout.readline()
        if not line:
            print("a worker did not start", file=sys.stderr)
            return None
        sizes.append(int(line.split()[1]))
        codes.append(line.split(" ", 2)[2].strip() if line.count(" ") >= 2 else "?")
    n = min(sizes)
    best = [[float("inf")] * n for _ in workers]
    for rep in range(args.repeat):
        for i in range(n):
            order = (0, 1) if (i + rep) % 2 == 0 else (1, 0)
            for k in order:
                w = workers[k]
                assert w.stdin is not None and w.stdout is not None
                w.stdin.write(f"{i}\n")
                w.stdin.flush()
                best[k][i] = min(best[k][i], float(w.stdout.readline()))
    for w in workers:
        assert w.stdin is not None
        w.stdin.close()
        w.wait()
    ratios = sorted(a / b for a, b in zip(best[0], best[1], strict=True) if b > 0)
    return {"messages": n, "repeat": args.repeat, "hash_seed": seed, "this": str(ROOT),
            "other": str(Path(args.against).resolve()), "this_code": codes[0], "other_code": codes[1],
            "this_python": python_build(), "other_python": other_python(args), "malloc": malloc_setting(),
            "this_cpu_ms_median": round(statistics.median(best[0]), 3),
            "other_cpu_ms_median": round(statistics.median(best[1]), 3),
            "this_cpu_ms_mean": round(statistics.mean(best[0]), 3),
            "other_cpu_ms_mean": round(statistics.mean(best[1]), 3),
            "ratio_median": round(statistics.median(ratios), 4),
            "ratio_p25_p75": [round(ratios[len(ratios) // 4], 4), round(ratios[3 * len(ratios) // 4], 4)],
            "ratio_of_sums": round(sum(best[0]) / sum(best[1]), 4),
            "this_faster_share": round(sum(r < 1 for r in ratios) / len(ratios), 3),
            "reference_loop_ms": reference_loop_ms()}


if __name__ == "__main__":
    raise SystemExit(main())
