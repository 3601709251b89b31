"""What a piece of code leaves to the garbage collector: objects that only a reference cycle
keeps, found by collecting with ``gc.DEBUG_SAVEALL`` (the collector puts them in
``gc.garbage`` instead of freeing them)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def cyclic_garbage() -> Iterator[list[str]]:
    """Yields a list that, when the block ends, names the type of every object the block left
    in reference cycles (and of what only they kept alive). The collector is off meanwhile, so
    that none of it is freed unseen."""
    found: list[str] = []
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.extend(sorted({f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage}))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()
