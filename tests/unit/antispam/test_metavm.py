"""The meta rules' C program (metavm.c, docs/decisions/0066-meta-program.md) against the generated
Python it stands in for: the same values, the same rules computed in the same order; and the
checks that keep a malformed program from running."""

from __future__ import annotations

import random
import sys
import tracemalloc
from array import array
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.antispam import metavm
from gateway_milter.antispam.engine import EngineResult, RuleEngine, engine_for
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, msg, write_rules

pytestmark = pytest.mark.skipif(not metavm.NATIVE, reason="the C module is not built (scripts/compiled.py build)")

WORDS = ["wire", "urgent", "pills", "money", "free", "offer", "click", "hello", "meeting", "report"]

BASE = "\n".join(
    [f"body     __B_{w.upper()}  /\\b{w}\\b/i\ntflags   __B_{w.upper()}  multiple maxhits=4" for w in WORDS]
    + [f"header   __H_{w.upper()}  Subject =~ /{w}/i" for w in WORDS]
    + ["header   __H_XM  exists:X-Mailer"])
BASE_NAMES = [f"__B_{w.upper()}" for w in WORDS] + [f"__H_{w.upper()}" for w in WORDS] + ["__H_XM"]
BINARY_NAMES = [f"__H_{w.upper()}" for w in WORDS] + ["__H_XM"]


def random_expr(rng: random.Random, names: list[str], depth: int) -> str:
    if depth == 0 or rng.random() < 0.25:
        if rng.random() < 0.85:
            return rng.choice(names)
        return rng.choice(["0", "1", "2", "3", "0.5", "1.5"])
    op = rng.choice(["&&", "||", "&&", "||", "+", "-", "*", ">", ">=", "<", "<=", "==", "!=", "!", "neg", "/"])
    if op == "!":
        return f"!({random_expr(rng, names, depth - 1)})"
    if op == "neg":
        return f"-({random_expr(rng, names, depth - 1)})"
    if op == "/":
        return f"({random_expr(rng, names, depth - 1)}) / {rng.choice(['2', '10', '0.5'])}"
    return f"({random_expr(rng, names, depth - 1)}) {op} ({random_expr(rng, names, depth - 1)})"


def random_rules(seed: int, n: int = 120) -> str:
    """Base rules, then metas over them and over the metas before them: scored ones, sub-metas,
    bounded sums (atleast), an unknown name and a cycle."""
    rng = random.Random(seed)
    lines = [BASE]
    names = list(BASE_NAMES)
    for i in range(n):
        scored = rng.random() < 0.5
        name = f"M{i}" if scored else f"__S{i}"
        if rng.random() < 0.15:
            picked = rng.sample(BINARY_NAMES, rng.randint(3, 6))
            expr = f"({' + '.join(picked)}) {rng.choice(['>', '>='])} {rng.randint(0, 4)}"
        else:
            expr = random_expr(rng, names, rng.randint(1, 4))
        lines.append(f"meta {name} {expr}")
        if scored:
            lines.append(f"score {name} {rng.choice(['0.5', '1.0', '-0.7', '2.5'])}")
        names.append(name)
    lines += ["meta __CYC_A __CYC_B || __H_WIRE", "meta __CYC_B __CYC_A", "meta ON_CYC __CYC_A || __H_FREE",
              "score ON_CYC 0.1", "meta ON_UNKNOWN __NO_SUCH_RULE || __B_CLICK", "score ON_UNKNOWN 0.1"]
    return "\n".join(lines) + "\n"


def random_messages(seed: int, n: int = 30) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        subject = " ".join(rng.sample(WORDS, rng.randint(0, 3)))
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 25)))
        out.append(msg(subject, body, headers="X-Mailer: m\r\n" if rng.random() < 0.3 else ""))
    return out


def both(eng: RuleEngine) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """(generated Python, C program): each as (allmetas, rule functions) of the engine, once its
    Hyperscan databases are in use (they change which rules a message computes)."""
    eng.hyperscan(None)
    eng.run(message_view(make_ctx(msg())))
    eng.native_metas = False
    eng._compile_metas()
    py = (eng._allmetas, eng._fns)
    eng.native_metas = True
    eng._compile_metas()
    return py, (eng._allmetas, eng._fns)


def run_with(eng: RuleEngine, compiled: tuple[Any, Any], raw: bytes) -> tuple[EngineResult, list[str]]:
    """A run with these metas, and the plain (not meta) rules it computed, in order."""
    calls: list[str] = []
    allmetas, fns = compiled
    metas = set(eng._meta_names)

    def recorded(name: str, fn: Any) -> Any:
        def call(t: Any, m: Any, ex: Any, v: Any) -> Any:
            calls.append(name)
            return fn(t, m, ex, v)
        return call
    eng._allmetas = allmetas
    eng._fns = {n: fn if n in metas else recorded(n, fn) for n, fn in fns.items()}
    try:
        return eng.run(message_view(make_ctx(raw))), calls
    finally:
        eng._allmetas, eng._fns = allmetas, fns


@pytest.mark.parametrize("seed", range(6))
def test_it_gives_the_generated_pythons_values_computing_the_same_rules(tmp_path: Path, seed: int) -> None:
    eng = engine_for((str(write_rules(tmp_path, random_rules(seed))),), 2, include_default=False)
    assert "__CYC_A" in eng.unsupported and "__NO_SUCH_RULE" not in eng.rules
    py, native = both(eng)
    assert "MetaProgram" in repr(native[0]) and "MetaProgram" not in repr(py[0])
    hits = 0
    for raw in random_messages(seed):
        want, want_calls = run_with(eng, py, raw)
        got, got_calls = run_with(eng, native, raw)
        assert got.values == want.values
        assert [(h.name, h.count, h.score) for h in got.hits] == [(h.name, h.count, h.score) for h in want.hits]
        assert got.score == want.score
        assert got_calls == want_calls  # the same rules computed, in the same order
        hits += len(got.hits)
    assert hits > 0  # (the messages do hit metas)


def test_a_function_put_in_a_sub_metas_place_is_called(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # without Hyperscan: its databases, once ready (at once when a run before this one left
    # them in the cache directory), have the engine compile its metas again, over the
    # function this test puts in place
    monkeypatch.setenv("GATEWAY_RULES_HYPERSCAN", "0")
    rules = BASE + "\nmeta __SUB __B_WIRE && !__H_XM\nmeta TOP __SUB || __H_URGENT\nscore TOP 1.0\n"
    eng = engine_for((str(write_rules(tmp_path, rules)),), 2, include_default=False)
    assert "MetaProgram" in repr(eng._allmetas)
    calls: list[str] = []
    inner = eng._fns["__SUB"]

    def counted(t: Any, m: Any, ex: Any, v: Any) -> Any:
        calls.append("__SUB")
        return inner(t, m, ex, v)
    eng._fns["__SUB"] = counted
    res = eng.run(message_view(make_ctx(msg("hi", "a wire transfer"))))
    assert calls == ["__SUB"] and [h.name for h in res.hits] == ["TOP"]


class Boom(Exception):
    pass


def program(code: list[int], names: tuple[str, ...] = ("A", "B", "M"), consts: tuple[float, ...] = (2.0,),
            entries: tuple[int, ...] = (-1, -1, 0), scored: tuple[int, ...] = (2,),
            lazy: tuple[Any, ...] | None = None) -> Any:
    return metavm.MetaProgram(names, lazy or (None,) * len(names), array("i", entries).tobytes(),
                              array("i", code).tobytes(), consts, array("i", scored).tobytes())


def run(prog: Any, memo: dict[str, Any], fns: dict[str, Any] | None = None) -> dict[str, Any]:
    def v(name: str) -> Any:
        raise AssertionError("the program computes rules itself")
    prog.run(memo, v, fns or {}, None, None, None)
    return memo


OK_CODE = [metavm.LOAD, 0, metavm.JF, 7, metavm.LOAD, 1, metavm.NOT, metavm.END]  # A && !B


def test_a_checked_program_runs() -> None:
    prog = program(OK_CODE)
    assert run(prog, {"A": 2, "B": 0})["M"] == 1
    assert run(prog, {"A": 0, "B": 0})["M"] == 0
    assert run(prog, {"A": 1, "B": 3})["M"] == 0
    assert prog.size() == (8, 1, 1)


@pytest.mark.parametrize("code,why", [
    ([metavm.LOAD, 3, metavm.END], "name out of range"),
    ([metavm.NUM, 1, metavm.END], "constant out of range"),
    ([metavm.LOAD, 0, metavm.ADD, metavm.END], "stack underflow"),
    ([metavm.LOAD, 0, metavm.LOAD, 1, metavm.END], "END without exactly one value"),
    ([metavm.LOAD, 0, metavm.JF, 0, metavm.LOAD, 1, metavm.END], "jump not forward"),
    ([metavm.LOAD, 0, metavm.JF, 5, metavm.LOAD, 1, metavm.END], "a jump past END"),  # into an operand
    ([metavm.LOAD, 0, metavm.JF, 99, metavm.END], "jump not forward within the code"),
    ([metavm.LOAD, 0, metavm.LOAD, 1, metavm.JF, 9, metavm.LOAD, 0, metavm.ADD, metavm.END], "stack depths differ"),
    ([metavm.LOAD, 0, 77, metavm.END], "unknown instruction"),
    ([metavm.LOAD, 0], "runs past the code"),
    ([metavm.ATLEAST, 1, 5, 0, 1, metavm.END], "bad ATLEAST"),
    ([metavm.ATLEAST, 1, 2, 0, 9, metavm.END], "name out of range"),
])
def test_it_refuses_a_malformed_program(code: list[int], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        program(code)


def test_it_refuses_bad_tables() -> None:
    with pytest.raises(ValueError, match="entry out of range"):
        program(OK_CODE, entries=(-1, -1, 50))
    with pytest.raises(ValueError, match="scored meta without a segment"):
        program(OK_CODE, scored=(1,))
    with pytest.raises(ValueError, match="one entry per name"):
        program(OK_CODE, entries=(0,))
    with pytest.raises(ValueError, match="whole number of int32"):
        metavm.MetaProgram(("A",), (None,), b"\0\0\0", array("i", [metavm.LOAD, 0, metavm.END]).tobytes(), (), b"")
    with pytest.raises(TypeError):
        program(OK_CODE, names=("A", "B", 3))  # type: ignore[arg-type]


def test_a_rules_exception_goes_through_and_a_missing_function_reads_0() -> None:
    prog = program(OK_CODE)

    def boom(t: Any, m: Any, ex: Any, v: Any) -> int:
        raise Boom("from a rule")
    with pytest.raises(Boom):
        run(prog, {}, {"A": boom})
    memo = run(prog, {"A": 1}, {})  # B: no function, 0 (and memoised as 0, as the engine's value does)
    assert memo == {"A": 1, "B": 0, "M": 1}
    with pytest.raises(TypeError):
        run(prog, {"A": "text"})


def test_a_division_by_zero_makes_its_meta_0() -> None:
    # 2 / 0 > ... : the parser lets no such meta through; the program answers 0 all the same
    prog = program([metavm.NUM, 0, metavm.NUM, 1, metavm.DIV, metavm.END], consts=(2.0, 0.0))
    assert run(prog, {})["M"] == 0


def test_deep_sub_metas_raise_recursion_error() -> None:
    depth = 5000
    names = tuple(f"__S{i}" for i in range(depth)) + ("A",)
    code: list[int] = []
    entries = []
    for i in range(depth):  # __S0 = A; __Si = __S(i-1)
        entries.append(len(code))
        code += [metavm.LOAD, depth if i == 0 else i - 1, metavm.END]
    entries.append(-1)

    def lazy(t: Any, m: Any, ex: Any, v: Any) -> int:
        return 0
    prog = program(code, names=names, consts=(), entries=tuple(entries), scored=(depth - 1,),
                   lazy=(lazy,) * depth + (None,))
    fns = {n: lazy for n in names[:-1]}
    with pytest.raises(RecursionError):
        run(prog, {"A": 1}, fns)
    memo = run(prog, {"A": 1, **{f"__S{i}": 1 for i in range(depth - 100)}}, fns)
    assert memo[f"__S{depth - 1}"] == 1


def test_it_keeps_no_memory() -> None:
    prog = program(OK_CODE)
    rule_value = 10 ** 30  # a value object of its own, to count its references

    def a(t: Any, m: Any, ex: Any, v: Any) -> int:
        return rule_value
    before = sys.getrefcount(rule_value), sys.getrefcount(a)
    for _ in range(200):
        run(prog, {}, {"A": a})
    # (counted where this file calls the program: a thread of an earlier test allocating
    # meanwhile, a resolver's or a learner's, is not the program's growth)
    mine = [tracemalloc.Filter(True, __file__)]
    tracemalloc.start()
    try:
        start = tracemalloc.take_snapshot().filter_traces(mine)
        for _ in range(20_000):
            run(prog, {}, {"A": a})
        end = tracemalloc.take_snapshot().filter_traces(mine)
    finally:
        tracemalloc.stop()
    grown = sum(d.size_diff for d in end.compare_to(start, "filename"))
    assert grown < 50_000
    assert (sys.getrefcount(rule_value), sys.getrefcount(a)) == before
