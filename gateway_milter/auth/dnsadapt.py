"""Adapters that route pyspf and dkimpy lookups through the gateway resolver.

Temporary DNS errors become :class:`DnsTempError` (dkimpy) or ``spf.TempError`` (pyspf), so a
timeout or SERVFAIL ends as ``temperror``: never as a pass, never as a silent "no record".
:data:`DKIMPY_VERIFY_LOG` is the logger dkimpy is given where it reads what a message brought.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway_milter.net.resolver import DnsBudget, Resolver


class _MessageFaults(logging.LoggerAdapter):  # type: ignore[type-arg]
    """dkimpy logs each fault it finds in a message's signatures or ARC chain at ERROR ("Duplicate
    ARC-Seal for instance 1", a body hash mismatch) besides returning it as the result: on a
    gateway that is every forged or mangled message, not a fault of ours. Logged at DEBUG."""

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


# (verification and ARC sealing over a message's own chain; signing with our key keeps
# dkimpy's logger, whose errors are about our key)
DKIMPY_VERIFY_LOG = _MessageFaults(logging.getLogger("bulwark.dkimpy"), {})


class DnsTempError(Exception):
    """A lookup timed out or failed temporarily (SERVFAIL, budget spent)."""


def dkim_dnsfunc(resolver: Resolver, budget: DnsBudget | None = None) -> Callable[..., bytes | None]:
    """dkimpy's ``dnsfunc(name, timeout=...)``: the TXT record as bytes (first record whose
    strings join to something), None when there is none."""

    def lookup(name: bytes | str, timeout: float = 5) -> bytes | None:
        qname = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        ans = resolver.query(qname, "TXT", budget)
        if ans.temporary:
            raise DnsTempError(f"{qname.rstrip('.')}: {ans.status}")
        if not ans.ok or not ans.txt_parts:
            return None
        # RFC 6376 3.6.2.2: multiple strings of one record are concatenated; several records
        # for one key name are ambiguous, dkimpy expects one: we take the first.
        return b"".join(ans.txt_parts[0])

    return lookup


def spf_lookup(resolver: Resolver, budget: DnsBudget | None) -> Callable[[str, str, Any, float], list[Any]]:
    """A ``DNSLookup(name, qtype, strict, timeout)`` for pyspf: ``[((name, qtype), value), ...]``."""
    import spf

    def lookup(name: str, qtype: str, strict: Any = True, timeout: float = 20) -> list[Any]:
        if qtype == "SPF":  # RFC 7208 removed type 99: never query it
            return []
        ans = resolver.query(name, qtype, budget)
        if ans.temporary:
            raise spf.TempError(f"DNS {ans.status} for {name}/{qtype}")
        if not ans.ok:
            return []
        out: list[Any] = []
        for i, rec in enumerate(ans.records):
            if qtype == "TXT":
                out.append(((name, qtype), list(ans.txt_parts[i])))
            elif qtype == "MX":
                out.append(((name, qtype), (rec[0], rec[1])))
            else:
                out.append(((name, qtype), rec))
        return out

    return lookup
