"""Builders for sender-authentication unit tests: a message context with a real policy
snapshot and layer runner, and DNS zone data served through the resolver's test seam."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway_milter.context import ConnectionInfo, MessageContext
from gateway_milter.pipeline.runner import LayerRunner
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import Direction, Stage


def make_ctx(raw: bytes = b"", *, ip: str = "192.0.2.10", helo: str = "mail.example.test",
             mail_from: str = "<alice@example.test>", doc: dict[str, Any] | None = None,
             direction: Direction = Direction.INBOUND, auth_user: str = "", scan_mode: bool = False,
             policy: PolicySnapshot | None = None) -> MessageContext:
    conn = ConnectionInfo(client_ip=ip, helo=helo)
    if auth_user:
        conn.macros["{auth_authen}"] = auth_user
    if policy is None:
        policy = PolicySnapshot.from_document(doc or {"domains": ["local.test"]})
    ctx = MessageContext(conn, policy, scan_mode=scan_mode)
    ctx.mail_from = mail_from
    ctx.direction = direction
    ctx.runner = LayerRunner()
    ctx.runner.enter_stage(Stage.EOM)
    if raw:
        head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
        name = value = None
        for line in head.split(b"\n"):
            if line[:1] in (b" ", b"\t") and name is not None:
                value = (value or "") + "\n" + line.decode()
                continue
            if name is not None:
                ctx.add_header(name, value or "")
            n, _, v = line.decode().partition(":")
            name, value = n, v.lstrip(" ")
        if name is not None:
            ctx.add_header(name, value or "")
        ctx.body.write(body.replace(b"\n", b"\r\n"))
    return ctx


def message(frm: str = "Alice <alice@example.test>", to: str = "bob@local.test", subject: str = "Hello",
            body: str = "Hi Bob,\nthis is a test.\n", extra: str = "") -> bytes:
    return (f"From: {frm}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Sat, 28 Nov 2026 09:00:00 +0000\r\n"
            f"Message-ID: <m1@example.test>\r\n{extra}\r\n{body.replace(chr(10), chr(13) + chr(10))}").encode()


def rules_doc(tmp_path: Path, rules: str, sub: str = "rules") -> dict[str, Any]:
    """A policy document whose rules layer runs ``rules`` alone (written to ``sub/local.cf``),
    for the local domain local.test."""
    d = tmp_path / sub
    d.mkdir(exist_ok=True)
    (d / "local.cf").write_text(rules)
    return {"domains": ["local.test"],
            "settings": {"rules": {"include_default": False, "rule_dirs": [str(d)], "use_bayes": False}}}
