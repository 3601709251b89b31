"""Small helpers shared by the Sieve unit tests."""

from __future__ import annotations

from typing import Any

from gateway_milter.context import (
    ConnectionInfo,
    MessageContext,
    Recipient,
    split_address,
)
from gateway_milter.pipeline.runner import LayerRunner
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.sieve import ExecutionResult, MessageData, compile_script


def run(script: str, message: bytes = b"From: a@example.org\nSubject: hi\n\nbody\n", **kw: Any) -> ExecutionResult:
    prog = compile_script(script, "t")
    return prog.execute(MessageData.from_bytes(message, **kw))


def kinds(res: ExecutionResult) -> list[str]:
    return [a.kind for a in res.actions]


def make_ctx(snapshot: PolicySnapshot, raw: bytes = b"", *, ip: str = "203.0.113.5", mail_from: str = "x@sender.test",
             rcpts: tuple[str, ...] = ("user@example.com",), helo: str = "mail.sender.test",
             client_name: str = "mail.sender.test") -> MessageContext:
    ctx = MessageContext(ConnectionInfo(client_ip=ip, helo=helo, client_name=client_name), snapshot)
    ctx.runner = LayerRunner()
    ctx.mail_from = mail_from
    for r in rcpts:
        _, dom = split_address(r)
        ctx.recipients.append(Recipient(r, dom, snapshot.is_local_domain(dom)))
    ctx.policy_domain = snapshot.canonical_domain(split_address(rcpts[0])[1]) if rcpts else None
    if raw:
        md = MessageData.from_bytes(raw)
        for n, v in md.headers:
            ctx.add_header(n, v)
        ctx.body.write(md.body)
    return ctx


def only_layers(*keep: str) -> dict[str, dict[str, str]]:
    """Settings that turn off every available layer except ``keep``: these tests are about the
    policy engine, not about what the other layers (DNS, scoring, ...) find."""
    from gateway_milter import layers

    return {lid: {"mode": "off"} for lid in layers.available() if lid not in keep}
