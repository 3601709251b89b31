"""``sieve check`` / ``sieve test``: compile a script, or run it on one .eml file.

Django-free so that tests call it directly; webadmin's ``manage.py sieve`` wraps it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from gateway_milter.clitext import printable
from gateway_milter.context import (
    ConnectionInfo,
    MessageContext,
    Recipient,
    split_address,
)
from gateway_milter.pipeline.runner import LayerFailure, LayerRunner
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.sieve import (
    CompileError,
    ExecutionResult,
    MessageData,
    compile_script,
)
from gateway_milter.sieve.bulwark import GatewayHooks
from gateway_milter.sieve.policy import ContextEnvironment, GatewayEnvironment
from gateway_milter.sieve.runtime import SieveRuntimeError


def context_from_eml(raw: bytes, *, mail_from: str = "", rcpts: list[str] | None = None, ip: str | None = None,
                     snapshot: PolicySnapshot | None = None, helo: str = "") -> MessageContext:
    """A MessageContext for one message file, as the milter would have built it."""
    snap = snapshot or PolicySnapshot.empty()
    ctx = MessageContext(ConnectionInfo(client_ip=ip, helo=helo, client_name="unknown"), snap, scan_mode=True)
    ctx.runner = LayerRunner()
    md = MessageData.from_bytes(raw)
    for n, v in md.headers:
        ctx.add_header(n, v)
    ctx.body.write(md.body)
    ctx.mail_from = mail_from
    for r in rcpts or []:
        _, dom = split_address(r)
        ctx.recipients.append(Recipient(r.strip("<>"), dom, snap.is_local_domain(dom)))
    if ctx.recipients:
        ctx.policy_domain = snap.canonical_domain(ctx.recipients[0].domain)
    return ctx


def run_on_context(source: str, name: str, ctx: MessageContext) -> ExecutionResult:
    prog = compile_script(source, name, loader=lambda n, loc: _sibling(name, n))
    env = ContextEnvironment(GatewayEnvironment(ctx.policy), ctx)
    return prog.execute(MessageData.from_context(ctx), env, hooks=GatewayHooks(ctx))


def _sibling(script_path: str, name: str) -> str | None:
    base = Path(script_path).parent
    if "/" in name or name.startswith("."):
        return None
    for p in (base / f"{name}.sieve", base / name):
        if p.is_file():
            return p.read_text("utf-8")
    return None


def check(path: str, out: TextIO) -> int:
    source = Path(path).read_text("utf-8", "surrogateescape")
    try:
        compile_script(source, path, loader=lambda n, loc: _sibling(path, n))
    except CompileError as e:
        out.writelines(printable(f"{path}:{err.line}:{err.column}: {err.message}") + "\n" for err in e.errors)
        return 1
    out.write(printable(f"{path}: OK") + "\n")
    return 0


def action_json(a: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"action": a.kind}
    args = dict(a.args)
    if a.kind in ("fileinto", "keep"):
        args.setdefault("flags", [])
        args["flags"] = list(args.get("flags") or [])
        if a.kind == "fileinto":
            args.setdefault("copy", False)
    d.update(args)
    return d


def action_line(a: Any) -> str:
    k, g = a.kind, a.args
    if k == "fileinto":
        extra = (" :copy" if g.get("copy") else "") + (f" :flags {' '.join(g['flags'])}" if g.get("flags") else "")
        return f"fileinto{extra} {g['mailbox']}"
    if k == "keep":
        return "keep" + (f" :flags {' '.join(g['flags'])}" if g.get("flags") else "")
    if k == "redirect":
        return f"redirect{' :copy' if g.get('copy') else ''} {g['address']}"
    if k in ("reject", "ereject"):
        return f"{k} {g['reason']}"
    if k in ("refuse", "tempfail"):
        return f"{k} {g['code']} {g['status']} {g['reason']}"
    if k == "quarantine":
        return f"quarantine :{g['queue']} {g['reason']}".rstrip()
    if k == "addheader":
        return f"addheader{' :last' if g.get('last') else ''} {g['name']}: {g['value']}"
    if k == "deleteheader":
        return f"deleteheader {g['name']}: {g.get('value', '')}".rstrip()
    return str(k)


def test(path: str, message: str, out: TextIO, *, mail_from: str = "", rcpt: list[str] | None = None,
         ip: str | None = None, as_json: bool = False) -> int:
    source = Path(path).read_text("utf-8", "surrogateescape")
    raw = Path(message).read_bytes()
    ctx = context_from_eml(raw, mail_from=mail_from, rcpts=rcpt, ip=ip)
    try:
        res = run_on_context(source, path, ctx)
    except LayerFailure as e:
        # a fail-closed layer (clamd down) tempfails the message in the milter: a run-time error
        res = ExecutionResult([], True, SieveRuntimeError(str(e), 0, path), [])
    except CompileError as e:
        if as_json:
            first = e.errors[0]
            out.write(json.dumps({"actions": [], "implicit_keep": True,
                                  "error": f"{first.line}:{first.column}: {first.message}"}) + "\n")
        else:
            out.writelines(printable(f"{path}:{err.line}:{err.column}: {err.message}") + "\n" for err in e.errors)
        return 2
    if as_json:
        out.write(json.dumps({"actions": [action_json(a) for a in res.actions], "implicit_keep": res.implicit_keep,
                              "error": str(res.error) if res.error else None}) + "\n")
        return 1 if res.error else 0
    out.writelines(printable(action_line(a)) + "\n" for a in res.actions)
    if res.implicit_keep:
        out.write("keep (implicit)\n")
    if res.error:
        out.write(printable(f"error: {res.error}") + "\n")
        return 1
    return 0
