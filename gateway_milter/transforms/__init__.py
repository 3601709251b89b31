"""Message changes after a verdict, for messages that will be delivered.

Contract: a transform is ``fn(ctx, outcome, services) -> TransformResult | None``. Transforms run
in the order of ``TRANSFORMS`` at end of message, after the policy accepted the message (or some
recipients of it). A transform that replaces the body returns the new body bytes (the front sends
them with ``replacebody``); header changes are :class:`HeaderEdit` values. DKIM signing runs last
so that it signs the final body and headers.

Transforms are fail-closed: an exception tempfails the message.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from gateway_milter.verdict import HeaderEdit, QuarantineQueue

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext
    from gateway_milter.verdict import Outcome

TRANSFORMS: list[str] = [
    "gateway_milter.transforms.strip:strip_attachments",
    "gateway_milter.transforms.spamheaders:spam_headers",
    # (after the spam headers: X-Bulwark-Result says whether they tagged the Subject)
    "gateway_milter.transforms.status:gateway_headers",
    "gateway_milter.transforms.authresults:authentication_results",
    "gateway_milter.transforms.dkimsign:dkim_sign",
]


@dataclass(slots=True)
class TransformResult:
    header_edits: list[HeaderEdit] = field(default_factory=list)
    new_body: bytes | None = None  # the whole new body (after the header block), CRLF line ends
    new_headers: list[tuple[str, str]] | None = None  # only for the scan CLI's rendering


class TransformServices(Protocol):
    def quarantine_copy(self, ctx: MessageContext, queue: QuarantineQueue, reason: str,
                        recipients: list[str] | None = None) -> str:
        """Store the message as received (durably) and return the quarantine id."""


class Transform(Protocol):
    def __call__(self, ctx: MessageContext, outcome: Outcome, services: TransformServices) -> TransformResult | None: ...


_loaded: list[Transform] | None = None


def loaded() -> list[Transform]:
    """The transforms whose modules exist (a transform still being built is skipped)."""
    global _loaded
    if _loaded is None:
        out = []
        for target in TRANSFORMS:
            mod, _, fn = target.partition(":")
            try:
                out.append(getattr(importlib.import_module(mod), fn))
            except ModuleNotFoundError as e:
                if e.name != mod:
                    raise
        _loaded = out
    return _loaded
