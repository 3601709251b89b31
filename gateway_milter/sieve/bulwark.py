"""The ``vnd.bulwark`` Sieve extension: gateway actions and tests (docs/policy/sieve.md).

RFC 5228 identifiers cannot contain dots, so the capability is ``vnd.bulwark`` and its tests
are named ``bulwark_*``. Actions: ``quarantine [:user|:admin] [reason]``,
``refuse [:code C] [:status X.Y.Z] text`` and ``tempfail [:code C] [:status X.Y.Z] text``.
Tests reach every defense layer: ``bulwark_symbol``, ``bulwark_fact``, ``bulwark_score``,
``bulwark_ip``, ``bulwark_host`` and ``bulwark_list``. A layer runs only when a test asks for
it, at most once per message (the runner memoises its result).
"""

from __future__ import annotations

import time

import ipaddress
import json
from collections.abc import Callable
from typing import Any

from gateway_milter.sieve.compiler import (
    CompileContext,
    Exec,
    Extension,
    Pred,
    SieveError,
    TagSpec,
    read_args,
    strlist_of,
)
from gateway_milter.sieve.grammar import Command, Test
from gateway_milter.sieve.language import REGISTRY, _keys, _simple
from gateway_milter.sieve.matching import compile_matcher, match_tags
from gateway_milter.sieve.runtime import Runtime, SieveAction, SieveRuntimeError

CAPABILITY = "vnd.bulwark"


class GatewayHooks:
    """What vnd.bulwark tests read: the message context and, at RCPT, the recipient."""

    def __init__(self, ctx: Any, rcpt: Any = None) -> None:
        self.ctx = ctx
        self.rcpt = rcpt

    def layer(self, layer_id: str, recipient: bool, rt: Runtime) -> Any:
        # The time a layer itself takes (DNS, clamd) does not count against the script's CPU
        # limit, which guards the Sieve evaluation only; layers have their own budgets. The
        # runtime is passed in, not kept: it holds these hooks, and a reference back would be a
        # cycle keeping the message's context until the next garbage collection.
        t0 = time.perf_counter()
        try:
            ctx = self.ctx
            if recipient:
                if self.rcpt is None:
                    return None
                return ctx.runner.recipient_result(ctx, layer_id, self.rcpt)
            return ctx.layer(layer_id)
        finally:
            rt.deadline += time.perf_counter() - t0


def _hooks(rt: Runtime, line: int) -> GatewayHooks:
    h = rt.hooks
    if not isinstance(h, GatewayHooks):
        raise SieveRuntimeError("vnd.bulwark tests need a gateway message context", line, rt.script)
    return h



def _judged_total(h: GatewayHooks, rt: Runtime) -> float:
    """The total score the thresholds are judged by: at end of message the scoring layer runs
    first (as for ``spamtest``), when it can and is on; before that, or without it, the sum
    of the symbols found so far. Before, a script placed before the scoring layer's, or any
    script under ``scoring.mode: score``, compared the symbols found so far: a message scored
    9 read 0 against ``bulwark_score :atleast "8"``."""
    from gateway_milter import layers
    from gateway_milter.verdict import Stage

    ctx = h.ctx
    runner = ctx.runner
    if (runner is not None and runner.stage is Stage.EOM and "scoring" in layers.available()
            and ctx.policy.settings_for("scoring", ctx.policy_domain).enabled):
        h.layer("scoring", False, rt)
    return ctx.score


def _scored_share(h: GatewayHooks, layer_id: str, rt: Runtime) -> float | None:
    """What a layer added to the judged total (the scoring layer's ``parts``: fitted scores,
    the Bayes cap; 0 for exempt mail), when the scoring layer counts that layer and can run
    (end of message); None otherwise (the layer's own symbol scores are compared then)."""
    from gateway_milter import layers
    from gateway_milter.layers.scoring import ScoringSettings
    from gateway_milter.verdict import Stage

    ctx = h.ctx
    runner = ctx.runner
    if runner is None or runner.stage is not Stage.EOM or "scoring" not in layers.available():
        return None
    settings = ctx.policy.settings_for("scoring", ctx.policy_domain)
    if not isinstance(settings, ScoringSettings) or not settings.enabled or layer_id not in settings.layers:
        return None
    scored = h.layer("scoring", False, rt)
    if scored is None or scored.error or scored.skipped or "score" not in scored.facts:
        return None
    return float((scored.fact("parts") or {}).get(layer_id, 0.0))


def _check_layer(cc: CompileContext, node: Command | Test, layer_id: str | None) -> None:
    if layer_id is None:
        return
    from gateway_milter import layers

    if layer_id not in layers.REGISTRY:
        raise SieveError(node.line, node.col, f"unknown layer \"{layer_id}\"")


# -- actions -----------------------------------------------------------------------------------
def c_quarantine(cc: CompileContext, cmd: Command) -> Exec:
    args = read_args(cc, cmd, "quarantine", {"user": TagSpec("queue"), "admin": TagSpec("queue")},
                     ["string"], optional_positional=1)
    _simple(cmd, "quarantine")
    queue = args.tag("queue") or "user"
    reason = cc.string(args.pos[0].value) if args.pos else (lambda rt: "")
    line = cmd.line

    def run(rt: Runtime) -> None:
        rt.add_action(SieveAction("quarantine", {"queue": queue, "reason": reason(rt)}, line))

    return run


def _c_refusal(kind: str, default_code: str, default_status: str) -> Callable[[CompileContext, Command], Exec]:
    def comp(cc: CompileContext, cmd: Command) -> Exec:
        args = read_args(cc, cmd, kind, {"code": TagSpec("code", "string"), "status": TagSpec("status", "string")},
                         ["string"])
        _simple(cmd, kind)
        code = args.value("code", default_code)
        status = args.value("status", default_status)
        from gateway_milter.verdict import Reply

        text_c = cc.const_string(args.pos[0].value)
        try:
            Reply(code, status, text_c if text_c is not None else "x")
        except ValueError as e:
            raise SieveError(cmd.line, cmd.col, f"{kind}: {e}") from None
        if code[0] != default_code[0]:
            raise SieveError(cmd.line, cmd.col, f"{kind}: the code must be {default_code[0]}xx")
        text = cc.string(args.pos[0].value)
        line = cmd.line

        def run(rt: Runtime) -> None:
            t = " ".join(text(rt).split())[:400]
            rt.add_action(SieveAction(kind, {"code": code, "status": status, "reason": t}, line))

        return run

    return comp


# -- tests -------------------------------------------------------------------------------------
def _layer_tags() -> dict[str, TagSpec]:
    return {"layer": TagSpec("layer", "string"), "recipient": TagSpec("recipient")}


def t_symbol(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "bulwark_symbol", {**match_tags(cc), **_layer_tags()}, ["strlist"])
    layer_id = args.value("layer")
    _check_layer(cc, t, layer_id)
    recipient = bool(args.tag("recipient"))
    keys, kconst = _keys(cc, args.pos[0])
    default_cmp = "i;octet"
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col, default_comparator=default_cmp)
    line = t.line

    def run(rt: Runtime) -> bool:
        h = _hooks(rt, line)
        if layer_id is not None:
            res = h.layer(layer_id, recipient, rt)
            names = [s.name for s in res.symbols] if res is not None else []
        else:
            names = [s.name for s in h.ctx.symbols]
        return match(rt, names)

    return run


def _fact_str(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, bool):
        return ["true" if v else "false"]
    if isinstance(v, (list, tuple, set)):
        out: list[str] = []
        for x in v:
            out.extend(_fact_str(x))
        return out
    if isinstance(v, dict):
        return [json.dumps(v, sort_keys=True, default=str)]
    if isinstance(v, float) and v.is_integer():
        return [str(int(v))]
    return [str(v)]


def t_fact(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "bulwark_fact", {**match_tags(cc), **_layer_tags()}, ["string", "strlist"])
    layer_id = args.value("layer")
    if layer_id is None:
        raise SieveError(t.line, t.col, "bulwark_fact needs :layer \"<layer id>\"")
    _check_layer(cc, t, layer_id)
    recipient = bool(args.tag("recipient"))
    fact = cc.string(args.pos[0].value)
    keys, kconst = _keys(cc, args.pos[1])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    line = t.line

    def run(rt: Runtime) -> bool:
        res = _hooks(rt, line).layer(layer_id, recipient, rt)
        if res is None:
            return False
        name = fact(rt)
        v: Any = res.facts
        for piece in name.split("."):
            v = v.get(piece) if isinstance(v, dict) else None
        vals = _fact_str(v)
        if not vals and args.tag("match") != "count":
            return False
        return match(rt, vals)

    return run


def t_score(cc: CompileContext, t: Test) -> Pred:
    tags = {**_layer_tags(), "after": TagSpec("after", "string"), "over": TagSpec("rel", "string"),
            "atleast": TagSpec("rel", "string"),
            "under": TagSpec("rel", "string")}
    args = read_args(cc, t, "bulwark_score", tags, [])
    layer_id = args.value("layer")
    _check_layer(cc, t, layer_id)
    after = args.value("after")
    _check_layer(cc, t, after)
    if after is not None and layer_id is not None:
        raise SieveError(t.line, t.col, "bulwark_score takes :layer or :after, not both")
    recipient = bool(args.tag("recipient"))
    rel = args.tag("rel")
    if rel is None:
        raise SieveError(t.line, t.col, "bulwark_score needs :over, :atleast or :under with a number")
    try:
        limit = float(args.value("rel"))
    except ValueError:
        node = args.tags["rel"][2]
        raise SieveError(node.line, node.col, f"\"{args.value('rel')}\" is not a number") from None
    line = t.line

    def run(rt: Runtime) -> bool:
        h = _hooks(rt, line)
        if after is not None:
            h.layer(after, recipient, rt)  # the total counts once this layer has run
            score = h.ctx.score
        elif layer_id == "scoring" and not recipient:
            score = _judged_total(h, rt)  # (its symbols score nothing: the total is its result)
        elif layer_id is not None:
            res = h.layer(layer_id, recipient, rt)
            share = None if recipient or res is None else _scored_share(h, layer_id, rt)
            if share is not None:
                score = share
            else:
                score = round(sum(s.score for s in res.symbols), 3) if res is not None else 0.0
        else:
            score = _judged_total(h, rt)
        if rel == "over":
            return bool(score > limit)
        if rel == "atleast":
            return bool(score >= limit)
        return bool(score < limit)

    return run


def t_ip(cc: CompileContext, t: Test) -> Pred:
    tags = {"cidr": TagSpec("kind"), "private": TagSpec("kind"), "public": TagSpec("kind")}
    args = read_args(cc, t, "bulwark_ip", tags, ["strlist"], optional_positional=1)
    kind = args.tag("kind") or "cidr"
    line = t.line
    if kind in ("private", "public"):
        if args.pos:
            raise SieveError(args.pos[0].line, args.pos[0].col, f"bulwark_ip :{kind} takes no list")

        def pub(rt: Runtime) -> bool:
            ip = _hooks(rt, line).ctx.conn.ip
            if ip is None:
                return False
            private = not ip.is_global
            return private if kind == "private" else not private

        return pub
    if not args.pos:
        raise SieveError(t.line, t.col, "bulwark_ip :cidr needs a list of networks")
    nets = []
    for n in strlist_of(args.pos[0]):
        try:
            nets.append(ipaddress.ip_network(n.strip(), strict=False))
        except ValueError:
            raise SieveError(args.pos[0].line, args.pos[0].col, f"\"{n}\" is not an IP network") from None
    tn = tuple(nets)

    def cidr(rt: Runtime) -> bool:
        ip = _hooks(rt, line).ctx.conn.ip
        return ip is not None and any(ip.version == n.version and ip in n for n in tn)

    return cidr


HOST_ITEMS = ("rdns", "helo", "ip", "auth")


def t_host(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "bulwark_host", match_tags(cc), ["string", "strlist"])
    item = cc.const_string(args.pos[0].value)
    if item not in HOST_ITEMS:
        raise SieveError(args.pos[0].line, args.pos[0].col, f"bulwark_host item must be one of {', '.join(HOST_ITEMS)}")
    keys, kconst = _keys(cc, args.pos[1])
    match = compile_matcher(cc, args, keys, kconst, t.line, t.col)
    line = t.line

    def run(rt: Runtime) -> bool:
        conn = _hooks(rt, line).ctx.conn
        v = {"rdns": conn.client_name, "helo": conn.helo, "ip": conn.client_ip or "", "auth": conn.auth_user}[item]
        if item == "rdns" and v in ("", "unknown"):
            return False
        return match(rt, [v])

    return run


LIST_KINDS = ("sender", "recipient", "ip", "host", "from")


def _any_address(_address: str) -> bool:
    return True


def t_list(cc: CompileContext, t: Test) -> Pred:
    args = read_args(cc, t, "bulwark_list", {"allow": TagSpec("list"), "block": TagSpec("list")}, ["strlist"])
    lst = args.tag("list") or "block"
    kinds = cc.const_list(strlist_of(args.pos[0])) or []
    for k in kinds:
        if k not in LIST_KINDS:
            raise SieveError(args.pos[0].line, args.pos[0].col, f"bulwark_list kind must be one of {', '.join(LIST_KINDS)}")
    line = t.line

    def run(rt: Runtime) -> bool:
        h = _hooks(rt, line)
        ctx = h.ctx
        lists = ctx.policy.lists
        dom = ctx.policy_domain
        # an allow entry counts as the lists layer counts it: a sender only where SPF or DKIM
        # vouches for its domain (lists.verify_senders), a host by its verified name only; a
        # block entry matches the claim itself
        vouched: Callable[[str], bool] = _any_address
        if lst == "allow" and ctx.policy.settings_for("lists", dom).verify_senders:
            from gateway_milter.layers.lists import SenderCheck

            vouched = SenderCheck(ctx)
        for k in kinds:
            if k == "sender" and lists.match_address(lst, "sender", ctx.mail_from, dom) and vouched(ctx.mail_from):
                return True
            if k == "from":
                from gateway_milter.mime.headers import addresses

                for _, a in addresses(ctx.header_values("From")):
                    if a and lists.match_address(lst, "sender", a, dom) and vouched(a):
                        return True
            if k == "recipient":
                rcpts = [h.rcpt] if h.rcpt is not None else ctx.recipients
                for r in rcpts:
                    if lists.match_address(lst, "recipient", r.plain, r.domain if r.is_local else None):
                        return True
            if k == "ip" and lists.match_ip(lst, ctx.conn.ip, dom):
                return True
            if k == "host" and lst == "allow" and lists.match_host(lst, ctx.conn.verified_name, dom):
                return True
            if k == "host" and lst == "block" and (lists.match_host(lst, ctx.conn.client_name, dom)
                                                   or lists.match_host(lst, ctx.conn.helo, dom)):
                return True
        return False

    return run


REGISTRY.add(Extension(
    CAPABILITY,
    commands={"quarantine": c_quarantine, "refuse": _c_refusal("refuse", "550", "5.7.1"),
              "tempfail": _c_refusal("tempfail", "451", "4.7.1")},
    tests={"bulwark_symbol": t_symbol, "bulwark_fact": t_fact, "bulwark_score": t_score,
           "bulwark_ip": t_ip, "bulwark_host": t_host, "bulwark_list": t_list},
))
