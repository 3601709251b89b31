"""The gateway's own header on delivered mail: ``X-Bulwark-Result`` (action, score, host,
message-log id, whether the spam headers tagged the Subject, symbols). Headers of that name
(and the older ``X-Bulwark-Id``) that arrived with the message are removed first, so downstream
filters can trust them. One header: every header change is a round trip through the MTA's
cleanup on the hot path."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gateway_milter.transforms import TransformResult, TransformServices
from gateway_milter.transforms.spamheaders import SUBJECT_TAG_FACT
from gateway_milter.verdict import HeaderEdit, Symbol, delete_all

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext
    from gateway_milter.verdict import Outcome

OWN_HEADERS = ("X-Bulwark-Result", "X-Bulwark-Id")


def shown(score: float) -> str:
    """The score to two decimals, cut down, never rounded up: 4.996 reads 4.99, not 5.00 (a
    downstream rule on score >= 5 filed mail judged below the threshold of 5, as SpamAssassin's
    bug 6419 did for X-Spam-Score)."""
    return f"{math.floor(round(score * 100, 6)) / 100:.2f}"


def shared_symbols(ctx: MessageContext) -> list[Symbol]:
    """The symbols every recipient of the delivered copy may read: those of the message, and
    a recipient's own (USER_BLOCKLIST_SENDER, ALLOWLIST_RECIPIENT, GREYLIST_PASS) only when that
    recipient is the only one. One copy goes to all recipients: another recipient's own lists, or
    a recipient refused at RCPT, are not theirs to see (the message log keeps every symbol)."""
    own = ctx.recipient_symbols
    if not own:
        return ctx.symbols
    only = {r.plain.lower() for r in ctx.recipients}
    return [s for s in ctx.symbols
            if id(s) not in own or (len(only) == 1 and own[id(s)] in only)]


def gateway_headers(ctx: MessageContext, outcome: Outcome, services: TransformServices) -> TransformResult:
    edits: list[HeaderEdit] = []
    for name in OWN_HEADERS:
        edits += delete_all(name, len(ctx.header_values(name)))
    symbols = ", ".join(sorted({s.name for s in shared_symbols(ctx)})) or "none"
    # subject_tag=added: the Subject's spam tag is the gateway's own (a message that arrived with
    # it reads "kept"), so that training from a mailbox copy takes off only the gateway's
    tagged = ctx.facts.get(SUBJECT_TAG_FACT)
    edits.append(HeaderEdit("add", "X-Bulwark-Result",
                            f"{outcome.action.value}; score={shown(ctx.score)}; host={ctx.policy.hostname}; "
                            f"id={ctx.log_id}; " + (f"subject_tag={tagged}; " if tagged else "") + f"symbols={symbols}"))
    return TransformResult(edits)
