"""Validate a Sieve script for the editor (RFC 5228): errors with line, column and message.

Uses the gateway's own Sieve compiler (``gateway_milter.sieve.validate``) when it is
installed; until then its parser, and as a last resort sievelib's parser, so that the editor
always flags syntax errors at the right line.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SieveProblem:
    line: int
    column: int
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_sieve(source: str) -> list[SieveProblem]:
    try:
        from gateway_milter.sieve import validate  # type: ignore[attr-defined]
    except ImportError:
        validate = None
    if validate is not None:
        out = []
        for e in validate(source) or []:
            get = e.get if isinstance(e, dict) else lambda k, _e=e: getattr(_e, k, None)
            out.append(SieveProblem(int(get("line") or 1), int(get("column") or 1), str(get("message") or e)))
        return out
    try:
        from gateway_milter.sieve.grammar import SieveError, parse
    except ImportError:
        return _sievelib(source)
    try:
        parse(source)
    except SieveError as e:
        return [SieveProblem(e.line, e.column, e.message)]
    return []


def _sievelib(source: str) -> list[SieveProblem]:
    from sievelib.parser import Parser

    p = Parser()
    if p.parse(source):
        return []
    m = re.match(r"line (\d+): (.*)", p.error or "")
    if m:
        return [SieveProblem(int(m.group(1)), 1, m.group(2))]
    return [SieveProblem(1, 1, p.error or "invalid script")]
