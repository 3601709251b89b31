"""The Sieve-ordered policy (docs/policy/sieve.md): system scripts generated from each layer's
settings, admin scripts inserted by position, compiled once per policy snapshot.

Order: start, then for each layer in layer order (``gateway.layer_order``, then the registry)
``before:<layer>``, the layer's system script, ``after:<layer>``; then the end. A script that
cancels the implicit keep (an explicit final action, RFC 5228 2.10.2) ends the policy; header
edits of every script that ran apply.
Actions map to outcomes: keep -> accept, discard, reject/ereject/refuse -> 5xx, tempfail -> 4xx,
fileinto "Quarantine"/"Junk" or ``quarantine`` -> quarantine, redirect -> add a recipient,
addheader/deleteheader -> header edits. A run-time error follows ``gateway.fail_mode``.
"""

from __future__ import annotations

import dataclasses

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway_milter import layers
from gateway_milter.layers.base import PolicyRule
from gateway_milter.pipeline.runner import LayerFailure
from gateway_milter.sieve import Program, compile_script
from gateway_milter.sieve.bulwark import GatewayHooks
from gateway_milter.sieve.runtime import (
    BasicEnvironment,
    MessageData,
    ReturnScript,
    Runtime,
    SieveAction,
    SieveRuntimeError,
    StopScript,
)
from gateway_milter.verdict import (
    Action,
    HeaderEdit,
    Outcome,
    QuarantineQueue,
    Reply,
    Stage,
    smtp_reply_text,
)

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext, Recipient
    from gateway_milter.policy.snapshot import PolicySnapshot, ScriptEntry

log = logging.getLogger("bulwark.sieve")

STAGE_ORDER = {s: i for i, s in enumerate(Stage)}
QUARANTINE_FOLDERS = {"quarantine": QuarantineQueue.USER, "junk": QuarantineQueue.USER,
                      "spam": QuarantineQueue.USER, "quarantine/admin": QuarantineQueue.ADMIN,
                      "admin-quarantine": QuarantineQueue.ADMIN}


@dataclass
class PolicyScript:
    name: str
    program: Program
    source: str
    system: bool
    layer_id: str | None = None
    stage: Stage = Stage.EOM
    recipient: bool = False
    rule_lines: dict[int, str] = field(default_factory=dict)

    def decided_by(self, line: int) -> str:
        if self.system and self.layer_id is not None:
            rule = self.rule_lines.get(line)
            if rule is not None:
                return f"system:{self.layer_id}:{rule}"
        return f"script:{self.name}:{line}"


@dataclass
class Plan:
    message: list[PolicyScript]
    recipient: list[PolicyScript]


# -- system scripts -----------------------------------------------------------------------------
def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _action_lines(o: Outcome) -> list[str]:
    lines = [f"addheader {_q(e.name)} {_q(e.value)};" if e.op == "insert" else
             f"addheader :last {_q(e.name)} {_q(e.value)};" if e.op == "add" else
             f"deleteheader :index {e.index} {_q(e.name)};"
             for e in o.header_edits]
    lines += [f"redirect :copy {_q(a)};" for a in o.add_recipients]
    if o.action is Action.REJECT:
        r = o.reply or Reply("550", "5.7.1", o.reason or "Message rejected by policy")
        # a layer's reject_code of 4xx (a DNSBL's "450" soft refusal) defers: refuse takes 5xx
        # only, and a refuse with 4xx stopped every policy version from loading
        verb = "tempfail" if r.code.startswith("4") else "refuse"
        lines.append(f"{verb} :code {_q(r.code)} :status {_q(r.enhanced)} {_q(r.text)};")
    elif o.action is Action.TEMPFAIL:
        r = o.reply or Reply("451", "4.7.1", o.reason or "Temporary failure")
        lines.append(f"tempfail :code {_q(r.code)} :status {_q(r.enhanced)} {_q(r.text)};")
    elif o.action is Action.DISCARD:
        lines.append("discard;")
    elif o.action is Action.QUARANTINE:
        q = (o.queue or QuarantineQueue.USER).value
        lines.append(f"quarantine :{q} {_q(o.reason)};")
    else:
        lines.append("keep;")
    lines.append("stop;")
    return lines


def system_script_source(layer_id: str, rules: list[PolicyRule]) -> tuple[str, dict[int, str]]:
    """The read-only Sieve text of one layer's system policy, and line -> rule name."""
    out = [f"# System policy of layer \"{layer_id}\", generated from its settings (read-only).",
           'require ["vnd.bulwark", "editheader", "copy"];']
    lines: dict[int, str] = {}
    for r in rules:
        conds = []
        rcpt = " :recipient" if r.recipient else ""
        if r.symbols:
            conds.append(f"bulwark_symbol :layer {_q(layer_id)}{rcpt} :is [{', '.join(_q(s) for s in r.symbols)}]")
        if r.min_score is not None:
            conds.append(f"bulwark_score :after {_q(layer_id)} :atleast {_q(format(r.min_score, 'g'))}")
        if not conds:
            continue
        test = conds[0] if len(conds) == 1 else f"anyof ({', '.join(conds)})"
        out.append(f"# rule {r.name}")
        out.append(f"if {test} {{")
        for a in _action_lines(r.outcome):
            lines[len(out) + 1] = r.name
            out.append("    " + a)
        out.append("}")
    return "\n".join(out) + "\n", lines


# -- the engine ---------------------------------------------------------------------------------
class GatewayEnvironment(BasicEnvironment):
    def __init__(self, snapshot: PolicySnapshot) -> None:
        host = snapshot.hostname
        super().__init__({"host": host, "domain": host.split(".", 1)[1] if "." in host else host})
        available = set(layers.available())  # once per snapshot, not per message
        self.has_scoring = "scoring" in available
        self.has_antivirus = "antivirus" in available

    def item_for(self, rt: Runtime, name: str) -> str | None:
        return self.environment_item(name)

    def spamtest(self, rt: Runtime, percent: bool) -> str:
        h = rt.hooks
        if not isinstance(h, GatewayHooks) or not self.has_scoring:
            return "0"
        res = h.layer("scoring", False, rt)  # through the hooks: its time is not the script's
        if res is None or res.error or res.skipped or "score" not in res.facts:
            return "0"  # RFC 5235: not tested (the scoring layer is off), never "1", tested and clean
        if res.fact("exempt"):
            # not tested either: exempt mail (allow-listed, authenticated, outbound) is scored 0
            # without the spam layers looking at it, and "1" would vouch that they found it clean
            return "0"
        score = h.ctx.score
        if percent:
            return str(max(0, min(100, round(score * 10))))
        return str(1 + max(0, min(9, int(score))))

    def virustest(self, rt: Runtime) -> str:
        h = rt.hooks
        if not isinstance(h, GatewayHooks) or not self.has_antivirus:
            return "0"
        from gateway_milter.layers.antivirus import virustest_value

        # RFC 5235: 0 not tested (error, skipped), 1 clean, 4 unscannable (never "clean"), 5 infected
        return virustest_value(h.layer("antivirus", False, rt))


class ContextEnvironment(GatewayEnvironment):
    """Adds the per-connection items (remote-host, remote-ip) of RFC 5183."""

    def __init__(self, base: GatewayEnvironment, ctx: MessageContext) -> None:
        self.has_scoring, self.has_antivirus = base.has_scoring, base.has_antivirus
        self.items = dict(base.items)
        self.items["remote-host"] = ctx.conn.client_name or ""
        self.items["remote-ip"] = ctx.conn.client_ip or ""


class SievePolicyEngine:
    """PolicyEngine of gateway_milter.policy.evaluate, built on the Sieve interpreter."""

    def __init__(self, snapshot: PolicySnapshot) -> None:
        self.snapshot = snapshot
        self._plans: dict[str | None, Plan] = {}
        self._lock = threading.Lock()
        self.env = GatewayEnvironment(snapshot)
        # Compile every plan now: a script error shows when the policy is loaded (the provider
        # then keeps the previous policy), never while a message waits.
        self.plan(None)
        for name in {d.name for d in snapshot.domains.values()}:
            self.plan(name)

    # -- compilation --------------------------------------------------------------------------
    def plan(self, domain: str | None) -> Plan:
        dom = self.snapshot.canonical_domain(domain)
        # Domains without own settings or scripts share the global plan.
        key = None if self.snapshot.policy_group(dom) == "global" else dom
        p = self._plans.get(key)
        if p is None:
            with self._lock:
                p = self._plans.get(key)
                if p is None:
                    p = self._plans[key] = build_plan(self.snapshot, key)
        return p

    # -- PolicyEngine --------------------------------------------------------------------------
    def envelope(self, ctx: MessageContext, skip: frozenset[str] = frozenset()) -> Outcome | None:
        scripts = []
        for s in self.plan(ctx.policy_domain).message:
            if not s.system:
                break  # an admin script may exempt the message: the rest waits for the content
            if STAGE_ORDER[s.stage] <= STAGE_ORDER[Stage.RCPT] and s.layer_id not in skip:
                scripts.append(s)
        o = self._run(ctx, scripts, None)
        return o if o is not None and o.action in (Action.REJECT, Action.TEMPFAIL) else None

    def recipient(self, ctx: MessageContext, rcpt: Recipient) -> Outcome | None:
        domain = rcpt.domain if rcpt.is_local else ctx.policy_domain
        return self._run(ctx, self.plan(domain).recipient, rcpt)

    def message(self, ctx: MessageContext) -> Outcome:
        o = self._run(ctx, self.plan(ctx.policy_domain).message, None, final=True)
        assert o is not None
        return o

    # -- execution -----------------------------------------------------------------------------
    def _run(self, ctx: MessageContext, scripts: list[PolicyScript], rcpt: Recipient | None,
             final: bool = False) -> Outcome | None:
        if not scripts:
            return Outcome.accept("no rule matched", "system:default") if final else None
        msg = MessageData.from_context(ctx, rcpt)
        rt = Runtime(msg, ContextEnvironment(self.env, ctx), hooks=GatewayHooks(ctx, rcpt))
        t0 = time.perf_counter()
        for s in scripts:
            mark = len(rt.actions)
            saved_headers = rt.headers
            if rt.vars:
                rt.vars = {}  # variables are per script
            if rt.match:
                rt.match = []
            rt.script = s.name
            seen = len(rt.warnings)
            try:
                s.program.body(rt)
            except (StopScript, ReturnScript):
                pass
            except LayerFailure:
                raise
            except Exception as e:
                if isinstance(e, SieveRuntimeError):
                    line, message = e.line, e.message
                else:  # an engine bug must not pass for "clean": log it, then follow the fail mode
                    log.exception("sieve engine error in %s", s.name)
                    line, message = rt.line, f"internal error: {type(e).__name__}: {e}"
                o = self._error(ctx, s, line, message)
                if o is not None:
                    return o
                del rt.actions[mark:]  # fail_mode accept: the failing script has no effect
                rt.headers = saved_headers
                rt.invalidate()
                rt.implicit_keep = True
                continue
            finally:
                for w in rt.warnings[seen:]:  # run-time problems that did not stop the script
                    ctx.add_trace(f"script:{s.name}", "warning", w)
            if not rt.implicit_keep:
                ms = (time.perf_counter() - t0) * 1000
                return self._decide(ctx, s, rt, ms)
        if not final:
            return None
        o = Outcome.accept("no rule matched", "system:default",
                           header_edits=_header_edits(rt.actions), add_recipients=_redirects(rt.actions))
        return o

    def _error(self, ctx: MessageContext, s: PolicyScript, line: int, message: str) -> Outcome | None:
        where = f"script:{s.name}:{line}"
        ctx.add_trace(where, "error", message)
        log.warning("sieve run-time error in %s line %s: %s", s.name, line, message)
        if self.snapshot.fail_mode == "accept":
            return None
        return Outcome.tempfail(reason=f"policy error in {s.name} line {line}: {message}", decided_by=where)

    def _decide(self, ctx: MessageContext, s: PolicyScript, rt: Runtime, ms: float) -> Outcome:
        final = [a for a in rt.actions if a.kind not in ("addheader", "deleteheader")
                 and not (a.kind in ("fileinto", "redirect") and a.args.get("copy"))]
        act = max(final, key=_strength) if final else None
        line = act.line if act is not None else rt.line
        decided = s.decided_by(line)
        edits = _header_edits(rt.actions)
        adds = _redirects(rt.actions)
        o = _outcome(act, decided, edits, adds)
        # redirect without :copy cancels the implicit keep: unless something else keeps or files
        # the message, the original recipients do not get it (RFC 5228 4.2)
        if o.action is Action.ACCEPT and any(a.kind == "redirect" for a in final) \
                and not any(a.kind in ("keep", "fileinto") for a in final):
            o = dataclasses.replace(o, drop_recipients=True)
        ctx.add_trace(decided, "decided", o.action.value + (f" {o.reply}" if o.reply else ""), ms)
        return o

    # -- introspection for the web UI ----------------------------------------------------------
    def scripts(self, domain: str | None) -> list[dict[str, Any]]:
        p = self.plan(domain)
        return [{"name": s.name, "system": s.system, "layer": s.layer_id, "source": s.source,
                 "recipient": s.recipient} for s in [*p.message, *p.recipient]]


# Which action of the deciding script becomes the outcome. discard is weakest: RFC 5228 4.4
# says it only cancels the implicit keep, so "keep; discard;" keeps the message. A quarantine
# folder beats a delivery: the outcome holds one disposition, and holding is the safe one.
_STRENGTH = {"refuse": 6, "reject": 6, "ereject": 6, "tempfail": 5, "quarantine": 4,
             "fileinto": 2, "keep": 2, "redirect": 2, "discard": 1}


def _strength(a: SieveAction) -> int:
    if a.kind == "fileinto" and a.args.get("mailbox", "").lower() in QUARANTINE_FOLDERS:
        return 4
    return _STRENGTH.get(a.kind, 0)


def _outcome(a: SieveAction | None, decided: str, edits: tuple[HeaderEdit, ...], adds: tuple[str, ...]) -> Outcome:
    if a is None:
        return Outcome.accept("", decided, header_edits=edits, add_recipients=adds)
    k = a.kind
    if k in ("refuse", "reject", "ereject", "tempfail"):
        text = smtp_reply_text(str(a.args.get("reason", "")), "Message rejected by policy")
        code = a.args.get("code", "451" if k == "tempfail" else "550")
        status = a.args.get("status", "4.7.1" if k == "tempfail" else "5.7.1")
        reply = Reply(code, status, text)
        if k == "tempfail":
            return Outcome.tempfail(reply, text, decided)
        return Outcome.reject(reply, text, decided)
    if k == "discard":
        return Outcome.discard("discarded by policy", decided)
    if k == "quarantine":
        q = QuarantineQueue.ADMIN if a.args.get("queue") == "admin" else QuarantineQueue.USER
        return Outcome(Action.QUARANTINE, queue=q, reason=a.args.get("reason") or "quarantined by policy",
                       decided_by=decided, header_edits=edits, add_recipients=adds)
    if k == "fileinto":
        box = a.args.get("mailbox", "").lower()
        if box in QUARANTINE_FOLDERS:
            return Outcome(Action.QUARANTINE, queue=QUARANTINE_FOLDERS[box], reason=f"fileinto {a.args['mailbox']}",
                           decided_by=decided, header_edits=edits, add_recipients=adds)
        return Outcome.accept(f"fileinto {a.args.get('mailbox')}", decided, header_edits=edits, add_recipients=adds)
    if k == "redirect":
        return Outcome.accept("redirect", decided, header_edits=edits, add_recipients=adds)
    return Outcome.accept("kept by policy", decided, header_edits=edits, add_recipients=adds)


def _header_edits(actions: list[SieveAction]) -> tuple[HeaderEdit, ...]:
    out = []
    for a in actions:
        if a.kind == "addheader":
            out.append(HeaderEdit("add" if a.args.get("last") else "insert", a.args["name"], a.args["value"]))
        elif a.kind == "deleteheader":
            out.append(HeaderEdit("delete", a.args["name"], index=int(a.args["index"])))  # (one per occurrence)
    return tuple(out)


def _redirects(actions: list[SieveAction]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a.args["address"] for a in actions if a.kind == "redirect"))


# -- building the plan ----------------------------------------------------------------------------
def _loader_for(snapshot: PolicySnapshot, domain: str | None) -> Any:
    def load(name: str, location: str) -> str | None:
        best = None
        for e in snapshot.scripts:
            if e.name != name or not e.enabled:
                continue
            if location == "global" and e.domain is not None:
                continue
            if e.domain == domain:
                return e.source
            if e.domain is None:
                best = e.source
        return best

    return load


def system_scripts(snapshot: PolicySnapshot, domain: str | None) -> list[tuple[str, bool, str, str, dict[int, str]]]:
    """The system scripts of a domain (None: the global settings): (layer, judged at RCPT,
    name, source, source line -> rule) per layer with rules, message rules and recipient rules
    apart."""
    by_layer: dict[str, list[PolicyRule]] = {}
    for lid, rule in snapshot.system_rules(domain):
        by_layer.setdefault(lid, []).append(rule)
    out = []
    for lid, rules in by_layer.items():
        for recipient in (False, True):
            rs = [r for r in rules if r.recipient == recipient]
            if rs:
                src, lines = system_script_source(lid, rs)
                out.append((lid, recipient, f"system:{lid}" + (":recipient" if recipient else ""), src, lines))
    return out


def check_system_scripts(snapshot: PolicySnapshot) -> None:
    """Compile the system scripts of the global settings and of every domain (each distinct
    source once), as a policy is published: settings whose rules do not compile would stop
    this version and every later one from loading in the milter (it keeps the version it has,
    and says so only in its log). Raises ValueError naming the script and the domain."""
    seen: set[str] = set()
    for dom in (None, *sorted(snapshot.domain_names)):
        for _lid, _rcpt, name, src, _lines in system_scripts(snapshot, dom):
            if src not in seen:
                seen.add(src)
                try:
                    compile_script(src, name)
                except Exception as e:  # noqa: BLE001 - whatever stops the milter's load
                    raise ValueError(f"{name} ({dom or 'global settings'}) {e}") from None


def build_plan(snapshot: PolicySnapshot, domain: str | None) -> Plan:
    order = list(snapshot.layer_order)  # gateway.layer_order first, then the registry's order
    slots: dict[str, list[PolicyScript]] = {"before": [], "after": []}
    for lid in order:
        slots[f"before:{lid}"] = []
        slots[f"system:{lid}"] = []
        slots[f"after:{lid}"] = []
    rcpt_scripts: list[PolicyScript] = []
    for lid, recipient, name, src, lines in system_scripts(snapshot, domain):
        prog = compile_script(src, name)
        ps = PolicyScript(name, prog, src, True, lid, layers.get(lid).stage, recipient, lines)
        (rcpt_scripts if recipient else slots[f"system:{lid}"]).append(ps)
    loader = _loader_for(snapshot, domain)
    for e in _admin_scripts(snapshot, domain):
        prog = compile_script(e.source, e.name, loader=loader)
        pos = e.position if e.position in slots else ("after" if e.position.startswith("after") else "before")
        slots[pos].append(PolicyScript(e.name, prog, e.source, False))
    message: list[PolicyScript] = list(slots["before"])
    for lid in order:
        message += slots[f"before:{lid}"] + slots[f"system:{lid}"] + slots[f"after:{lid}"]
    message += slots["after"]
    return Plan(message, rcpt_scripts)


def _admin_scripts(snapshot: PolicySnapshot, domain: str | None) -> list[ScriptEntry]:
    return [e for e in snapshot.scripts if e.enabled and (e.domain is None or e.domain == domain)]
