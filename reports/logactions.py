"""What the message log's sender actions say, the same on the page and in the API."""

from __future__ import annotations

from typing import Any

# a domain administrator's list entry is their domains' own: for mail none of them received (their
# users' outbound mail) there is none to add it to; it said "added" and added nothing
NO_LIST_DOMAIN = ("No domain you administer received this message, so there is no list of yours to add its "
                  "sender to: nothing was added.")


def of_domains(doms: list[Any]) -> str:
    """`` of a.example, b.example`` for the domains an entry went to (nothing for the global list)."""
    names = sorted(d.name for d in doms if d is not None)
    return f" of {', '.join(names)}" if names else ""
