"""The meta rules as instructions for the C ``MetaProgram`` (metavm.c; docs/decisions/0066-meta-program.md).

The rules engine plans each meta expression once (``RuleEngine._meta_plan``: operands of a
boolean chain ordered by expected cost, bounded sums as ``atleast``) and renders the plan either
as Python (the generated functions it has always run) or, here, as instructions:

    ("num", "3")                 NUM k
    ("name", "RULE")             LOAD i
    ("not", x) / ("neg", x)      x NOT / x NEG
    ("atleast", names, need)     ATLEAST need n i1..in
    ("chain", "&&", [a, b, c])   a JF end b JF end c end:      (``||``: JT)
    ("op", "&&", a, b)           a JF end b end:               (``||``: JT)
    ("op", "+", a, b)            a b ADD                        (and the other operators)

``scripts/compiled.py build`` compiles metavm.c with the other compiled modules; without that
build ``NATIVE`` is False and the engine runs the generated Python."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import Any

from gateway_milter.compiled import native

# opcodes: the order of the enum in metavm.c
(NUM, LOAD, NOT, NEG, ADD, SUB, MUL, DIV, GT, GE, LT, LE, EQ, NE, JF, JT, ATLEAST, END) = range(18)
BINARY = {"+": ADD, "-": SUB, "*": MUL, "/": DIV, ">": GT, ">=": GE, "<": LT, "<=": LE, "==": EQ, "!=": NE}

Plan = tuple[Any, ...]


class Assembler:
    """Collects the segments of one program: each meta's instructions, then END."""

    def __init__(self) -> None:
        self.code: list[int] = []
        self.names: dict[str, int] = {}
        self.consts: dict[float, int] = {}
        self.entries: dict[str, int] = {}

    def name(self, n: str) -> int:
        i = self.names.get(n)
        if i is None:
            i = self.names[n] = len(self.names)
        return i

    def const(self, text: str) -> int:
        x = float(text)
        i = self.consts.get(x)
        if i is None:
            i = self.consts[x] = len(self.consts)
        return i

    def segment(self, meta: str, plan: Plan) -> None:
        self.name(meta)
        self.entries[meta] = len(self.code)
        self.emit(plan)
        self.code.append(END)

    def emit(self, plan: Plan) -> None:
        code = self.code
        kind = plan[0]
        if kind == "num":
            code += (NUM, self.const(plan[1]))
        elif kind == "name":
            code += (LOAD, self.name(plan[1]))
        elif kind in ("not", "neg"):
            self.emit(plan[1])
            code.append(NOT if kind == "not" else NEG)
        elif kind == "atleast":
            names, need = plan[1], plan[2]
            code += (ATLEAST, need, len(names), *(self.name(n) for n in names))
        elif kind == "chain" or plan[1] in ("&&", "||"):
            items = plan[2] if kind == "chain" else [plan[2], plan[3]]
            jump = JF if plan[1] == "&&" else JT
            holes = []
            for x in items[:-1]:
                self.emit(x)
                code += (jump, -1)
                holes.append(len(code) - 1)
            self.emit(items[-1])
            for h in holes:
                code[h] = len(code)
        else:
            self.emit(plan[2])
            self.emit(plan[3])
            code.append(BINARY[plan[1]])

    def build(self, lazy: dict[str, Callable[..., Any]], scored: Sequence[str]) -> Any:
        """The C program: ``lazy`` maps each meta with a segment to its generated Python
        function (the program runs a sub-meta itself only while the engine's functions still
        hold that one); ``scored``, the metas ``run`` computes, in order (each with a segment)."""
        names = tuple(self.names)
        entries = array("i", (self.entries.get(n, -1) for n in names))
        return MetaProgram(names, tuple(lazy.get(n) for n in names), entries.tobytes(),
                           array("i", self.code).tobytes(), tuple(self.consts),
                           array("i", (self.names[n] for n in scored)).tobytes())


_native = native("gateway_milter.antispam._metavm")  # built by scripts/compiled.py
MetaProgram: Any = _native.MetaProgram if _native is not None else None
NATIVE = _native is not None
