"""DNS for the unit tests: lookups answered from fake records (``StaticBackend``) through the
one resolver object the gateway asks (gateway_milter/net/resolver.py), swapped in for a test
and put back after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from gateway_milter.net.resolver import DnsAnswer, DnsBudget, Resolver, StaticBackend, set_resolver


@contextmanager
def resolving_with(resolver: Resolver) -> Iterator[Resolver]:
    """*resolver* answers every lookup until the block ends; the previous one then again."""
    prev = set_resolver(resolver)
    try:
        yield resolver
    finally:
        set_resolver(prev)


@pytest.fixture()
def dns() -> Iterator[StaticBackend]:
    """No records yet: a test adds the ones it needs to the backend."""
    backend = StaticBackend()
    with resolving_with(Resolver(backend=backend, timeout=1.0)):
        yield backend


class RecordingResolver(Resolver):
    """Notes each lookup started (``prefetch``; ``query`` of a name not started before) as
    ``dns:<name>`` in *events*, once per name: a second call joins the first lookup."""

    def __init__(self, backend: StaticBackend, events: list[str]) -> None:
        super().__init__(backend=backend, timeout=2.0)
        self.events = events

    def prefetch(self, name: str, rdtype: str, budget: DnsBudget | None = None) -> Any:
        self._note(name)
        return super().prefetch(name, rdtype, budget)

    def query(self, name: str, rdtype: str, budget: DnsBudget | None = None) -> DnsAnswer:
        self._note(name)
        return super().query(name, rdtype, budget)

    def _note(self, name: str) -> None:
        if f"dns:{name}" not in self.events:
            self.events.append(f"dns:{name}")
