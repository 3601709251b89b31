"""A map of text fields to signed 64-bit counters, read in batches (docs/decisions/0065-counter-table.md).

The in-process stores keep their counter hashes (Bayes' token counts and model weights, 60,000
and more fields each) in a ``CounterTable``. ``scripts/compiled.py build`` compiles the C
version (countertable.c), which keeps a short field in its slot beside its hash and value, so
that a batch read costs one cache miss a field where a dict costs three; without that build the
class below, over a dict, does the same. Both:

- take exact ``str`` fields only (``TypeError`` otherwise) and ``int`` values;
- hold values in Redis's counter range, signed 64-bit: a value or sum outside it is an
  ``OverflowError`` and changes nothing;
- check a whole batch before they change anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway_milter.compiled import native

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


def _field(f: object) -> str:
    if type(f) is not str:
        raise TypeError(f"field must be str, not {type(f).__name__}")
    return f


def _value(v: object) -> int:
    if not isinstance(v, int):
        raise TypeError(f"value must be int, not {type(v).__name__}")
    if not INT64_MIN <= v <= INT64_MAX:
        raise OverflowError("counter value out of the signed 64-bit range")
    return int(v)


class PyCounterTable:
    """The same as the C type, over a dict (the reference the tests hold the C type to)."""

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._d)

    def get_many(self, fields: Sequence[str], default: Any = 0) -> list[Any]:
        d = self._d
        return [d.get(_field(f), default) for f in fields]

    def get(self, field: str, default: Any = None) -> Any:
        return self._d.get(_field(field), default)

    def add_many(self, deltas: dict[str, int]) -> None:
        if type(deltas) is not dict:
            raise TypeError("add_many takes a dict")
        d = self._d
        sums = [(f, d.get(_field(f), 0) + _value(x)) for f, x in deltas.items()]
        for _f, s in sums:
            _value(s)
        for f, s in sums:
            if s <= 0:
                d.pop(f, None)
            else:
                d[f] = s

    def set_many(self, fields: Sequence[str], values: Sequence[int]) -> None:
        if len(fields) != len(values):
            raise ValueError("set_many: as many values as fields")
        pairs = [(_field(f), _value(v)) for f, v in zip(fields, values, strict=True)]
        self._d.update(pairs)

    def discard_many(self, fields: Sequence[str]) -> None:
        d = self._d
        for f in fields:
            d.pop(_field(f), None)

    def items(self) -> list[tuple[str, int]]:
        return list(self._d.items())

    def clear(self) -> None:
        self._d.clear()


_native = native("gateway_milter.store._countertable")  # built by scripts/compiled.py
CounterTable: Any = _native.CounterTable if _native is not None else PyCounterTable
NATIVE = _native is not None
