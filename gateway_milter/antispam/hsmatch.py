"""Hyperscan as the first pass over a message's texts for body-like rules (ADR 0047).

One scan per text (body, rawbody, uri, full, and the long header texts such as ``ALL`` and
``Received`` for the header rules on them: engine.HS_HEADERS) reports every rule whose pattern
*may* match; the rule's own Python expression then decides, so results are exactly those of
running every expression. Hyperscan compiles each pattern either exactly or, where it lacks a
feature (look-around, back-references), in prefilter mode, which matches a superset (if need
be without its ``$`` anchors); bounded repeats wider than ``WIDEN`` are widened to unbounded
ones (also a superset), which keeps compile time and database size in check. A pattern
Hyperscan refuses or compiles too slowly stays with the Python prefilters (matcher.py).

Compiling takes about a minute for the Debian rule set, so it never happens in the milter's
request path: a child process (``python -m gateway_milter.antispam.hsmatch``) builds the
databases under a watchdog (a pattern that takes longer than ``PATTERN_BUDGET_S`` is left to
Python) and writes them to a cache file named by a hash of the patterns; the engine runs on
the Python prefilters until the file is there. Without the ``hyperscan`` package (it is built
for x86-64 only) the engine simply keeps the Python path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

hyperscan: Any
try:  # optional: wheels exist for x86-64 Linux only
    import hyperscan
except ImportError:  # pragma: no cover - depends on the platform
    hyperscan = None

log = logging.getLogger(__name__)

WIDEN = 16  # bounded repeats {m,n} with n above this become {m,}
PATTERN_BUDGET_S = 2.0  # a pattern that takes longer to compile alone stays with Python (at 8 s,
# __FILL_THIS_FORM_LONG1/2 came in as prefilters that let every text through: +4 ms a message)
BUILD_BUDGET_S = 900.0  # the whole build
CHUNK = 120  # patterns per database: compile time grows faster than linearly with the set (measured:
# body rules in chunks of 60/120/240/480: 29/30/31/52 s to compile, 0.41/0.29/0.29/0.38 ms to scan 5 KB)
FORMAT = 2  # cache file layout (2: loose prefilters, header texts)
STALE_S = 7 * 86400  # cache files of rule sets unused this long are removed


def available() -> bool:
    return hyperscan is not None


def hs_expression(source: str, flags: str, anchors: bool = True) -> tuple[str, int] | None:
    """Hyperscan expression and flags for a pattern translated for Python ``re`` (perlre.py),
    or None when it cannot be expressed. The result matches wherever the Python pattern does
    (scanning a text in multi-line, UTF-8 mode without Unicode properties: ASCII classes, as
    the Python patterns are compiled). ``anchors=False`` drops the ``$``, ``\\A`` and ``\\Z`` anchors, for prefilter
    mode where Hyperscan refuses one inside the pattern ("Embedded end anchors not supported",
    as in ``(?:$|\\W)``): an assertion removed only lets more texts match, and the rule's own
    expression still decides."""
    if hyperscan is None:
        return None
    src = source.replace(r"(?=\n?\Z)", "\x00EOL")  # perlre's form of Perl's \Z: PCRE's \Z
    out: list[str] = []
    i, n = 0, len(src)
    in_class = False
    while i < n:
        c = src[i]
        if c == "\\" and i + 1 < n:
            nx = src[i + 1]
            if not anchors and not in_class and nx in "AZz":
                out.append("(?:)")
            elif nx == "Z":
                out.append(r"\z")  # Python's \Z is the very end
            elif nx == "u":
                out.append("\\x{" + src[i + 2:i + 6] + "}")
                i += 6
                continue
            elif nx == "U":
                out.append("\\x{" + src[i + 2:i + 10].lstrip("0") + "}")
                i += 10
                continue
            else:
                out.append(c + nx)
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            # a ']' right after '[' or '[^' is a literal in both syntaxes
            if src[i:i + 1] == "^":
                out.append("^")
                i += 1
            if src[i:i + 1] == "]":
                out.append("]")
                i += 1
            continue
        if c == "{":
            j = src.find("}", i)
            inner = src[i + 1:j] if j > i else ""
            lo, comma, hi = inner.partition(",")
            if j > i and (lo.isdigit() or (comma and not lo)) and (hi.isdigit() or not hi) and (lo or comma):
                lo = lo or "0"  # Python reads {,n} and {,} as {0,n} and {0,}; PCRE would read them literally
                if comma and hi and int(hi) > WIDEN:
                    out.append("{" + lo + ",}")
                elif comma:
                    out.append("{" + lo + "," + hi + "}")
                else:
                    out.append("{" + lo + "}")
                i = j + 1
                continue
        if c == "$" and not anchors:
            c = "(?:)"

        out.append(c)
        i += 1
    expr = "".join(out).replace("\x00EOL", r"\Z" if anchors else "(?:)")
    hflags = hyperscan.HS_FLAG_ALLOWEMPTY | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_UTF8 \
        | hyperscan.HS_FLAG_MULTILINE
    if "i" in flags:
        hflags |= hyperscan.HS_FLAG_CASELESS
    if "s" in flags:
        hflags |= hyperscan.HS_FLAG_DOTALL
    if "x" in flags:
        expr = "(?x)" + expr
    try:
        expr.encode("utf-8")
    except UnicodeEncodeError:
        return None  # lone surrogates from a rule file: not valid UTF-8
    return expr, hflags


MODE_FLAGS = {"exact": 0, "prefilter": hyperscan.HS_FLAG_PREFILTER if hyperscan else 0,
              "loose": hyperscan.HS_FLAG_PREFILTER if hyperscan else 0}  # loose: the expression without $


def mode_expression(e: Entry, mode: str) -> bytes:
    return (e.loose if mode == "loose" else e.expression).encode()


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    kind: str  # body, rawbody, uri, full, or a header spec of engine.HS_HEADERS
    expression: str
    flags: int
    loose: str = ""  # the expression without its $ anchors, when it has any


def plan_key(entries: list[Entry]) -> str:
    h = hashlib.sha256()
    h.update(f"{FORMAT}|{WIDEN}|{getattr(hyperscan, '__version__', '')}".encode())
    for e in entries:
        h.update(f"\x00{e.name}\x01{e.kind}\x01{e.flags}\x01{e.expression}".encode())
    return h.hexdigest()[:32]


def _collect(i: int, _from: int, _to: int, _flags: int, hit: list[int]) -> None:
    """Hyperscan's match callback: the pattern's index into the scan's list (one function for
    every scan, its list passed as the context, instead of a closure made per scan)."""
    hit.append(i)


class BodyMatcher:
    """Compiled databases, one list per text kind, and the rules each decides."""

    def __init__(self, dbs: dict[str, list[tuple[Any, list[str]]]], modes: dict[str, str]) -> None:
        self.dbs = dbs
        self.modes = modes  # rule -> "exact" | "prefilter" | "loose" (only rules covered)
        self.covered: dict[str, frozenset[str]] = {k: frozenset(n for _, names in lst for n in names)
                                                   for k, lst in dbs.items()}
        self._local = threading.local()

    def _scratch(self, db: Any) -> Any:
        cache: dict[int, Any] | None = getattr(self._local, "scratch", None)
        if cache is None:
            cache = self._local.scratch = {}
        s = cache.get(id(db))
        if s is None:
            s = cache[id(db)] = hyperscan.Scratch(db)
        return s

    def candidates(self, kind: str, text: str) -> set[str] | None:
        """Rules of this kind that may match the text; None when the text cannot be scanned
        (then every rule of the kind goes the Python way)."""
        lst = self.dbs.get(kind)
        if not lst:
            return set()
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            return None
        found: set[str] = set()
        hit: list[int] = []
        for db, names in lst:
            db.scan(data, match_event_handler=_collect, context=hit, scratch=self._scratch(db))
            if hit:
                found.update(names[i] for i in hit)
                hit.clear()
        return found

    # -- cache file ---------------------------------------------------------------------------
    def dump(self, path: Path) -> None:
        """One JSON line (modes, rule names, blob sizes), then the serialized databases."""
        blobs: list[bytes] = []
        layout: dict[str, list[tuple[int, list[str]]]] = {}
        for k, lst in self.dbs.items():
            for db, names in lst:
                b = hyperscan.dumpb(db)
                blobs.append(b)
                layout.setdefault(k, []).append((len(b), names))
        head = json.dumps({"format": FORMAT, "modes": self.modes, "dbs": layout}).encode()
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(head + b"\n")
            for b in blobs:
                f.write(b)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> BodyMatcher | None:
        try:
            data = path.read_bytes()
            nl = data.index(b"\n")
            doc = json.loads(data[:nl])
            if doc.get("format") != FORMAT:
                return None
            pos = nl + 1
            dbs: dict[str, list[tuple[Any, list[str]]]] = {}
            for k, lst in doc["dbs"].items():
                for size, names in lst:
                    blob = data[pos:pos + size]
                    if len(blob) != size:
                        raise ValueError("truncated file")
                    pos += size
                    dbs.setdefault(k, []).append((hyperscan.loadb(blob, hyperscan.HS_MODE_BLOCK), list(names)))
            return cls(dbs, dict(doc["modes"]))
        except (OSError, ValueError, KeyError, TypeError, hyperscan.error) as e:
            log.warning("rules: cannot load the Hyperscan cache %s: %s", path, e)
            return None


# -- building (in a child process, under a watchdog) ----------------------------------------------
def _child(spec_path: str, out_path: str) -> int:
    """Reads the build spec; prints ``try I`` / ``mode I exact|prefilter|loose|-`` per pattern from
    ``start``, then compiles the databases and writes the cache file."""
    _die_with_parent(int(os.environ.get("BULWARK_HS_PARENT", "0")))
    spec = json.loads(Path(spec_path).read_text())
    entries = [Entry(*e) for e in spec["entries"]]
    modes: dict[str, str] = spec["modes"]  # index -> mode, for patterns already tried
    for i in range(spec["start"], len(entries)):
        e = entries[i]
        print(f"try {i}", flush=True)
        mode = "-"
        for m in ("exact", "prefilter", "loose"):
            if m == "loose" and not e.loose:
                continue
            try:
                hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK).compile(
                    expressions=[mode_expression(e, m)], ids=[0], flags=[e.flags | MODE_FLAGS[m]])
                mode = m
                break
            except hyperscan.error:
                continue
        print(f"mode {i} {mode}", flush=True)
        modes[str(i)] = mode
    by_kind: dict[str, list[tuple[Entry, str]]] = {}
    for i, e in enumerate(entries):
        m = modes.get(str(i), "-")
        if m != "-":
            by_kind.setdefault(e.kind, []).append((e, m))
    dbs: dict[str, list[tuple[Any, list[str]]]] = {}
    out_modes: dict[str, str] = {}
    for kind, items in by_kind.items():
        for c in range(0, len(items), CHUNK):
            chunk = items[c:c + CHUNK]
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            db.compile(expressions=[mode_expression(e, m) for e, m in chunk], ids=list(range(len(chunk))),
                       flags=[e.flags | MODE_FLAGS[m] for e, m in chunk])
            dbs.setdefault(kind, []).append((db, [e.name for e, _ in chunk]))
            out_modes.update((e.name, m) for e, m in chunk)
            print(f"db {kind} {c}", flush=True)
    BodyMatcher(dbs, out_modes).dump(Path(out_path))
    print("done", flush=True)
    return 0


def _die_with_parent(parent: int) -> None:
    """A build outliving the process that asked for it would only burn CPU: ask Linux to
    kill this child with its parent (PR_SET_PDEATHSIG), then check it has not already gone."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent and os.getppid() != parent:
        sys.exit(3)


def build(entries: list[Entry], out: Path, pattern_budget_s: float = PATTERN_BUDGET_S,
          budget_s: float = BUILD_BUDGET_S) -> bool:
    """Compiles in a child process; a pattern that takes longer than ``pattern_budget_s`` is
    left out (the child is restarted after it). True when the cache file was written."""
    modes: dict[str, str] = {}
    start = 0
    deadline = time.monotonic() + budget_s
    with tempfile.TemporaryDirectory(prefix="bulwark-hs-") as tmp:
        spec = Path(tmp) / "spec.json"
        while True:
            spec.write_text(json.dumps({"entries": [[e.name, e.kind, e.expression, e.flags, e.loose] for e in entries],
                                        "modes": modes, "start": start}))
            proc = subprocess.Popen([sys.executable, "-m", "gateway_milter.antispam.hsmatch", str(spec), str(out)],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "BULWARK_HS_PARENT": str(os.getpid())},
                                    cwd=str(Path(__file__).resolve().parents[2]))
            assert proc.stdout is not None
            current: int | None = None
            since = time.monotonic()
            restart = False
            buf = ""
            try:
                while True:
                    now = time.monotonic()
                    if now > deadline:
                        log.warning("rules: Hyperscan build over its %.0f s budget; staying with Python", budget_s)
                        return False
                    wait = (since + pattern_budget_s - now) if current is not None else (deadline - now)
                    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, min(wait, 5.0)))
                    if not ready:
                        if current is not None and time.monotonic() - since > pattern_budget_s:
                            modes[str(current)] = "-"  # too slow to compile: Python decides
                            start = current + 1
                            restart = True
                            break
                        continue
                    chunk = os.read(proc.stdout.fileno(), 65536).decode()
                    if not chunk:
                        break
                    buf += chunk
                    while "\n" in buf:
                        line, buf = buf.split("\n", 1)
                        parts = line.split()
                        if parts[:1] == ["try"]:
                            current, since = int(parts[1]), time.monotonic()
                        elif parts[:1] == ["mode"]:
                            modes[parts[1]] = parts[2]
                            current = None
                            start = int(parts[1]) + 1
                        elif parts[:1] == ["done"]:
                            return True
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stdout.close()  # (each restart's pipe, not only the last one's)
            if not restart:
                log.warning("rules: Hyperscan build failed (exit %s); staying with Python", proc.returncode)
                return False


def entries_for(rules: Iterable[tuple[str, str, str, str, bool]]) -> list[Entry]:
    """(name, kind, python source, flags, pieces) -> the entries Hyperscan could take.
    ``pieces``: the rule is searched in each line or part alone and can see their ends
    (engine._sees_piece_ends), where Hyperscan reads them joined: its expression is the one
    without anchors, which matches wherever a piece alone can."""
    out = []
    for name, kind, source, flags, pieces in rules:
        hx = hs_expression(source, flags, anchors=not pieces)
        if pieces:
            if hx is not None:
                out.append(Entry(name, kind, hx[0], hx[1]))
            continue
        if hx is not None:
            loose = hs_expression(source, flags, anchors=False) if "$" in hx[0] else None
            out.append(Entry(name, kind, hx[0], hx[1], loose[0] if loose and loose[0] != hx[0] else ""))
    return out


class Loader:
    """Finds or builds the cache file for a set of entries, in the background; ``matcher`` is
    None until it is there."""

    def __init__(self, entries: list[Entry], cache_dir: Path) -> None:
        self.entries = entries
        self.key = plan_key(entries)
        self.path = cache_dir / f"rules-hs-{self.key}.db"
        self.matcher: BodyMatcher | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rules-hyperscan", daemon=True)
                self._thread.start()

    def wait(self, timeout: float | None = None) -> BodyMatcher | None:
        self.start()
        self._done.wait(timeout)
        return self.matcher

    def _run(self) -> None:
        try:
            self.matcher = self._load_or_build()
        except Exception:  # never take the rules layer down: the Python path stays
            log.exception("rules: Hyperscan set-up failed; staying with Python")
        finally:
            self._done.set()

    def _load_or_build(self) -> BodyMatcher | None:
        if not self.entries:
            return None
        if self.path.exists():
            return self._load()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_suffix(".lock")
        import fcntl

        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per machine; the others wait for it
            if not self.path.exists():
                t0 = time.monotonic()
                if not build(self.entries, self.path):
                    return None
                log.info("rules: Hyperscan databases built in %.1f s", time.monotonic() - t0)
        return self._load()

    def _load(self) -> BodyMatcher | None:
        # engines of one file share its databases in a process (rule sets that differ only in
        # skip_rules: about 40 MB each for Debian's set); freed with the last engine using them
        with _loaded_lock:
            m = _loaded.get(self.path)
            if m is None:
                m = BodyMatcher.load(self.path)
                if m is not None:
                    _loaded[self.path] = m
        if m is not None:
            prune(self.path)
        return m


_loaded: weakref.WeakValueDictionary[Path, BodyMatcher] = weakref.WeakValueDictionary()
_loaded_lock = threading.Lock()


def prune(keep: Path, max_age_s: float = STALE_S) -> None:
    """Files of rule sets not loaded for ``max_age_s`` go (each rule-file change makes a new
    one, tens of MB for the Debian set); the one in use is touched to mark it fresh."""
    now = time.time()
    try:
        os.utime(keep)
        for f in keep.parent.glob("rules-hs-*"):
            if f != keep and now - f.stat().st_mtime > max_age_s:
                f.unlink(missing_ok=True)
    except OSError as e:
        log.warning("rules: cannot tidy the Hyperscan cache in %s: %s", keep.parent, e)


if __name__ == "__main__":
    if hyperscan is None:
        sys.exit(2)
    sys.exit(_child(sys.argv[1], sys.argv[2]))
