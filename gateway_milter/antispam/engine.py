"""The compiled rule engine: runs a :class:`~.sarules.RuleSet` against a :class:`~.saview.SaMessage`.

Compiled once per process and rule set (``engine_for``): one Hyperscan prefilter database per
rule class (body, rawbody, uri, full, and header rules grouped by header), meta expressions
compiled to Python functions in dependency order. Per message, each text is scanned once and
only candidate rules are confirmed with their regular expression.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_milter.antispam import saeval
from gateway_milter.antispam.matcher import MultiMatcher
from gateway_milter.antispam.sarules import Rule, RuleSet, load_rules
from gateway_milter.antispam.saview import MAX_LINE, SaMessage

# Pseudo-headers SpamAssassin synthesises from the trust path; we do not build them, so the
# rules on them are listed as unsupported rather than silently never matching.
UNSUPPORTED_HEADERS = ("X-Spam-Relays-", "X-Spam-DCC", "X-Spam-Pyzor", "X-Spam-Languages", "X-Languages",
                       "X-Spam-Country", "X-Relay-Countries", "X-Spam-ASN", "X-ASN", "X-Spam-Status",
                       "X-Spam-Flag", "X-Spam-Level", "X-Spam-Score", "X-Spam-Report")
SUPPORTED_MODS = ("", "raw", "addr", "name", "first", "last")


@dataclass(frozen=True, slots=True)
class RuleHit:
    name: str
    score: float
    describe: str
    count: int = 1


@dataclass(slots=True)
class EngineResult:
    hits: list[RuleHit] = field(default_factory=list)  # scored rules that hit (not __ subrules)
    values: dict[str, int] = field(default_factory=dict)  # every rule's hit count (metas read it)
    score: float = 0.0
    ms: float = 0.0


class _Group:
    """Rules matching the same text (one header, or the body, ...)."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.matcher = MultiMatcher([r.pattern for r in rules if r.pattern is not None]) if len(rules) >= 4 else None


class RuleEngine:
    def __init__(self, rs: RuleSet, exclude_scores: frozenset[str] = frozenset(),
                 skip: frozenset[str] = frozenset()) -> None:
        self.ruleset = rs
        self.unsupported = dict(rs.unsupported)
        rules = dict(rs.rules)
        for name in skip:
            if rules.pop(name, None) is not None:
                self.unsupported[name] = "disabled by the rules.skip_rules setting"
        for name, r in list(rules.items()):
            if r.kind in ("header", "mimeheader") and r.target:
                spec = r.target.removeprefix("exists:")
                hname, _, mod = spec.partition(":")
                if r.target.startswith("exists:"):
                    mod = ""
                if hname.startswith(UNSUPPORTED_HEADERS) or mod not in SUPPORTED_MODS:
                    self.unsupported[name] = f"pseudo-header or modifier {r.target!r} is not implemented"
                    del rules[name]
        # metas on unsupported rules are unsupported (again, after the header pass)
        changed = True
        while changed:
            changed = False
            for name, r in list(rules.items()):
                if r.kind == "meta":
                    bad = [d for d in r.deps if d in self.unsupported]
                    if bad:
                        self.unsupported[name] = f"depends on unsupported {', '.join(bad[:3])}"
                        del rules[name]
                        changed = True
        # only what a scored rule needs runs (SpamAssassin skips score-0 rules too)
        needed: set[str] = set()
        stack = [n for n, r in rules.items() if r.score != 0 and not n.startswith("__")]
        while stack:
            n = stack.pop()
            if n in needed or n not in rules:
                continue
            needed.add(n)
            stack.extend(rules[n].deps)
        self.rules = {n: r for n, r in rules.items() if n in needed}
        self.disabled = sorted(set(rules) - needed)
        self.exclude_scores = exclude_scores | {n for n, r in self.rules.items() if r.eval_fn == "check_bayes"}
        self.extras: dict[str, Any] = {"freemail_domains": rs.freemail}
        by_kind: dict[str, list[Rule]] = {}
        headers: dict[str, list[Rule]] = {}
        self.evals: list[Rule] = []
        self.exists: list[Rule] = []
        self.mimeheaders: list[Rule] = []
        for r in self.rules.values():
            if r.eval_fn:
                self.evals.append(r)
            elif r.kind == "header":
                if r.target.startswith("exists:"):
                    self.exists.append(r)
                else:
                    headers.setdefault(r.target, []).append(r)
            elif r.kind == "mimeheader":
                self.mimeheaders.append(r)
            elif r.kind != "meta":
                by_kind.setdefault(r.kind, []).append(r)
        self.groups = {k: _Group(v) for k, v in by_kind.items()}
        self.header_groups = {k: _Group(v) for k, v in headers.items()}
        self.metas = self._order_metas()

    def _order_metas(self) -> list[tuple[Rule, Callable[[dict[str, int]], Any]]]:
        metas = {n: r for n, r in self.rules.items() if r.kind == "meta"}
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(n: str) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                raise ValueError(f"meta rule cycle through {n}")
            state[n] = 1
            for d in metas[n].deps:
                if d in metas:
                    visit(d)
            state[n] = 2
            order.append(n)

        for n in list(metas):
            try:
                visit(n)
            except ValueError as e:
                self.unsupported[n] = str(e)
        out = []
        for n in order:
            if n in self.unsupported:
                continue
            fn = eval(f"lambda h: {metas[n].meta}", {"__builtins__": {}}, {})
            out.append((metas[n], fn))
        return out

    # -- per message ----------------------------------------------------------------------------
    def run(self, m: SaMessage, extra: dict[str, Any] | None = None) -> EngineResult:
        t0 = time.perf_counter()
        ex = dict(self.extras)
        if extra:
            ex.update(extra)
        h: dict[str, int] = {}
        for spec, g in self.header_groups.items():
            value = m.header(spec)
            self._match_header(g, value, h)
        for r in self.exists:
            if m.header(r.target[7:]) is not None:
                h[r.name] = 1
        body = self.groups.get("body")
        if body:
            self._match_lines(body, m.body, m.paragraphs, h)
        raw = self.groups.get("rawbody")
        if raw:
            lines = [ln[:MAX_LINE] for ln in m.rawbody.split("\n")]
            self._match_lines(raw, "\n".join(lines), lines, h)
        uri = self.groups.get("uri")
        if uri and m.uris:
            self._match_lines(uri, "\n".join(m.uris), m.uris, h)
        full = self.groups.get("full")
        if full:
            self._match_lines(full, m.full, [m.full], h)
        for r in self.mimeheaders:
            hname, _, mod = r.target.partition(":")
            for part in m.part_headers:
                vals = [v for n, v in part if n.lower() == hname.lower()]
                if not vals:
                    continue
                from gateway_milter.antispam.saview import decode_header_value
                value = vals[0] if mod == "raw" else decode_header_value(vals[0])
                assert r.pattern is not None
                if bool(r.pattern.compiled.search(value)) != r.negate:
                    h[r.name] = 1
                    break
        for r in self.evals:
            efn = saeval.EVALS[r.eval_fn]
            try:
                n = efn(m, r.eval_args, ex)
            except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError):
                n = 0  # bad arguments in a rule file: the rule does not hit
            if n:
                h[r.name] = n
        for r, fn in self.metas:
            try:
                v = fn(h)
            except ZeroDivisionError:
                v = 0
            if v:
                h[r.name] = 1
        res = EngineResult(values=h)
        for name, count in h.items():
            if name.startswith("__"):
                continue
            r = self.rules[name]
            if r.score == 0:
                continue
            score = 0.0 if name in self.exclude_scores else r.score
            res.hits.append(RuleHit(name, score, r.describe, count))
            res.score += score
        res.hits.sort(key=lambda x: (-x.score, x.name))
        res.score = round(res.score, 3)
        res.ms = (time.perf_counter() - t0) * 1000
        return res

    @staticmethod
    def _match_header(g: _Group, value: str | None, h: dict[str, int]) -> None:
        for r in g.rules:
            v = value if value is not None else (r.if_unset if r.if_unset is not None else "")
            assert r.pattern is not None
            if bool(r.pattern.compiled.search(v)) != r.negate:
                h[r.name] = 1

    @staticmethod
    def _match_lines(g: _Group, joined: str, lines: list[str], h: dict[str, int]) -> None:
        """Body-like rules run once over the lines joined by newlines, in multi-line mode
        (``^``/``$`` at line boundaries): one search per candidate rule instead of one per
        line. A pattern could in theory match across a line break through ``\\s``; rules are
        written per paragraph and we accept that approximation (documented)."""
        rules = g.rules
        if g.matcher is not None:
            cand = sorted(set(g.matcher.candidates(joined)))
            patterned = [r for r in rules if r.pattern is not None]
            todo = [patterned[i] for i in cand]
        else:
            todo = rules
        for r in todo:
            rx = r.pattern.compiled  # type: ignore[union-attr]
            if r.maxhits <= 1:
                if rx.search(joined):
                    h[r.name] = 1
            else:
                n = 0
                for _ in rx.finditer(joined):
                    n += 1
                    if n >= r.maxhits:
                        break
                if n:
                    h[r.name] = n


_engines: dict[tuple[Any, ...], RuleEngine] = {}
_lock = threading.Lock()


def engine_for(dirs: tuple[str, ...] = (), score_set: int = 2, include_default: bool = True,
               skip: tuple[str, ...] = ()) -> RuleEngine:
    """The process-wide engine for a set of rule directories (rebuilt when a file changes)."""
    from gateway_milter.antispam.sarules import DEFAULT_DIRS

    paths: list[Path] = []
    if include_default:
        paths += [d for d in DEFAULT_DIRS if d.is_dir()][:1]
    paths += [Path(d) for d in dirs]
    stamp = []
    for p in paths:
        files = sorted(p.glob("*.cf")) if p.is_dir() else [p]
        stamp += [(str(f), f.stat().st_mtime_ns) for f in files if f.exists()]
    key = (tuple(stamp), score_set, tuple(sorted(skip)))
    eng = _engines.get(key)
    if eng is None:
        with _lock:
            eng = _engines.get(key)
            if eng is None:
                eng = RuleEngine(load_rules(paths, score_set), skip=frozenset(skip))
                _engines.clear()  # one rule set per process: drop stale ones
                _engines[key] = eng
    return eng
