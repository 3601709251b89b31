"""The transaction driver: one SMTP transaction through the pipeline, independent of pymilter.

The milter front (gateway_milter/front) and the scan CLI both drive a :class:`MessageContext`
through ``mail`` -> ``rcpt``* -> ``eom`` and finish it with ``finish``, which emits the message
log record. Each step returns a plain decision object that the caller turns into SMTP replies.

Invariants (never lose mail):
- any exception in a step becomes a 4xx tempfail decision, never an accept;
- a quarantined copy is stored (fsynced) before ``eom`` returns;
- the message-log record is handed to the journal before the reply is sent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway_milter import layers, transforms
from gateway_milter.context import ConnectionInfo, MessageContext, Recipient, split_address
from gateway_milter.layers import backscatter, dnsbl
from gateway_milter.layers.direction import message_direction, recipient_direction
from gateway_milter.layers.scoring import counted_points
from gateway_milter.mime.headers import decode_text
from gateway_milter.pipeline.runner import FAULT_HANG, LayerFailure, LayerRunner
from gateway_milter.policy.evaluate import engine_for
from gateway_milter.verdict import (
    DEFAULT_TEMPFAIL,
    Action,
    HeaderEdit,
    Outcome,
    QuarantineQueue,
    Reply,
    Stage,
)

if TYPE_CHECKING:
    from gateway_milter.policy.snapshot import PolicySnapshot

log = logging.getLogger("bulwark.transaction")

INTERNAL_ERROR = Reply("451", "4.3.0", "Temporary local problem, please try again later")
_SPARE_NONE: frozenset[str] = frozenset()
_SPARE_DNSBL = frozenset({"dnsbl"})  # an exempt recipient is not refused by the zones' rules
POLICY_GROUP_DEFER = Reply("452", "4.5.3", "Too many recipients for this policy group, please send again")


class PolicyProvider(Protocol):
    def current(self) -> PolicySnapshot: ...


class QuarantineStore(Protocol):
    def store(self, raw: bytes, meta: dict[str, Any]) -> dict[str, Any]: ...


class LogSink(Protocol):
    def emit(self, record: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class StepDecision:
    """``action`` is continue/reject/tempfail (before DATA) for one SMTP command."""

    action: str = "continue"
    reply: Reply | None = None


@dataclass(slots=True)
class EomDecision:
    action: Action
    reply: Reply | None = None
    header_edits: list[HeaderEdit] = field(default_factory=list)
    new_body: bytes | None = None
    delete_recipients: list[str] = field(default_factory=list)
    add_recipients: list[str] = field(default_factory=list)
    # ESMTP parameters for an added recipient that replaces one the client gave (BATV's plain
    # address keeps the tagged one's NOTIFY= and ORCPT=, RFC 3461)
    add_recipient_params: dict[str, tuple[str, ...]] = field(default_factory=dict)
    quarantine_ids: list[str] = field(default_factory=list)
    change_sender: str | None = None



def _untag_and_sign(ctx: MessageContext) -> None:
    """BATV's part of a delivered message, whatever decided it: the backscatter layer untags
    recipients (``rewrite_recipients``) and signs the envelope sender (``change_sender``) when
    it runs, but a script that decides before its system rule (an allow-list's ``keep``), or
    ``mode: score``, which has no rule, left the prvs= address, which nothing downstream
    knows, and the sender unsigned. The layer's result is computed once a message."""
    if "backscatter" in layers.available() and ctx.policy.settings_for("backscatter", ctx.policy_domain).enabled:
        ctx.layer("backscatter")
    backscatter.untag_recipients(ctx)  # (also with the layer off, and for outbound mail)


class Gateway:
    """Process-wide: holds the policy provider and the stores; stateless per message."""

    def __init__(self, policy: PolicyProvider, quarantine: QuarantineStore, log_sink: LogSink,
                 node: str = "") -> None:
        self.policy = policy
        self.quarantine = quarantine
        self.log_sink = log_sink
        self.node = node

    # -- steps ----------------------------------------------------------------------------------
    def connect(self, conn: ConnectionInfo) -> None:
        """Start the lookups that need only the client address (DNSBL, reverse DNS) at connect,
        with the global settings, so they run during HELO and MAIL; the layers collect them
        later (a lookup already in flight or cached is not repeated). No-op when no such layer
        is on."""
        snap = self.policy.current()
        todo = snap.compiled.get("connect_prefetch")
        if todo is None:  # once per policy snapshot
            todo = snap.compiled["connect_prefetch"] = [
                lid for lid in _prefetching_layers()
                if layers.get(lid).prefetch_at_connect and snap.settings_for(lid, None).enabled]
        if not todo or conn.client_ip is None:
            return
        ctx = MessageContext(conn, snap)
        ctx.runner = LayerRunner()
        for lid in todo:
            try:
                layers.get(lid).prefetch(ctx, snap.settings_for(lid, None))
            except Exception:
                log.debug("connect prefetch of %s failed", lid, exc_info=True)

    def eom_may_block(self, ctx: MessageContext) -> bool:
        """Whether end of message may wait on something (a layer with network or store I/O is
        on somewhere in the policy): then it runs on the stage pool under its time budget.
        Computed once per policy snapshot."""
        snap = ctx.policy
        v = snap.compiled.get("eom_may_block")
        if v is None:
            scopes = (None, *snap.domains)
            v = snap.compiled["eom_may_block"] = any(
                not layers.get(lid).local or lid in FAULT_HANG
                for lid in layers.available() if any(snap.settings_for(lid, d).enabled for d in scopes))
        return bool(v)

    def begin(self, conn: ConnectionInfo, *, scan_mode: bool = False) -> MessageContext:
        ctx = MessageContext(conn, self.policy.current(), scan_mode=scan_mode)
        ctx.runner = LayerRunner()
        ctx.runner.enter_stage(Stage.MAIL)
        ctx.in_transaction = True  # (finish gives the answer autolearn waits for)
        return ctx

    def mail(self, ctx: MessageContext, sender: str, esmtp: tuple[str, ...] = ()) -> StepDecision:
        ctx.mail_from = sender.strip().strip("<>")
        ctx.mail_esmtp = tuple(esmtp)
        ctx.note(f"MAIL FROM:<{ctx.mail_from}>" + (" " + " ".join(esmtp) if esmtp else ""))
        # Outbound mail is judged by the sender's domain until a recipient says otherwise.
        if ctx.is_internal_sender:
            ctx.policy_domain = ctx.policy.canonical_domain(ctx.sender_domain)
        self._prefetch(ctx)
        return StepDecision()

    def _prefetch(self, ctx: MessageContext, layer_ids: list[str] | None = None) -> None:
        """Let layers start their slow lookups (DNS) now, so they run while SMTP goes on."""
        for layer_id in _prefetching_layers() if layer_ids is None else layer_ids:
            try:
                settings = ctx.policy.settings_for(layer_id, ctx.policy_domain)
                if settings.enabled:
                    layers.get(layer_id).prefetch(ctx, settings)
            except Exception:
                log.debug("prefetch of %s failed", layer_id, exc_info=True)

    def rcpt(self, ctx: MessageContext, address: str, esmtp: tuple[str, ...] = ()) -> StepDecision:
        assert ctx.runner is not None
        # a refused recipient leaves the direction of the accepted ones as it was: set while it
        # is judged, it made local mail with a refused outside recipient "outbound" (unscored,
        # signed); with none accepted, the refused one's stays (a relay attempt is logged so)
        before = ctx.direction
        decision = self._rcpt(ctx, address, esmtp)
        if decision.action != "continue" and ctx.recipients:
            ctx.direction = before
        return decision

    def _rcpt(self, ctx: MessageContext, address: str, esmtp: tuple[str, ...]) -> StepDecision:
        assert ctx.runner is not None
        try:
            ctx.runner.enter_stage(Stage.RCPT)
            addr = address.strip().strip("<>")
            _, domain = split_address(addr)
            is_local = ctx.policy.is_local_domain(domain)
            rcpt = Recipient(addr, domain, is_local, tuple(esmtp),
                             direction=recipient_direction(ctx.is_internal_sender, is_local))
            # One policy group per message: recipients of another group are deferred (452). The
            # first local recipient fixes it even when it is refused: the message-level layers
            # have run with its domain's settings and lists, and their results are kept.
            group_domain = domain if is_local and not ctx.is_internal_sender else ctx.policy_domain
            if ctx.recipients or ctx.policy_domain is not None:
                if ctx.policy.policy_group(group_domain) != ctx.policy.policy_group(ctx.policy_domain):
                    return self._refuse_rcpt(ctx, addr, POLICY_GROUP_DEFER, "tempfail")
            elif is_local and not ctx.is_internal_sender:
                ctx.policy_domain = ctx.policy.canonical_domain(domain)
                self._prefetch(ctx, _domain_prefetching_layers(ctx.policy, ctx.policy_domain))
            ctx.direction = message_direction([r.direction for r in ctx.recipients] + [rcpt.direction])
            engine = engine_for(ctx.policy)
            spared = _SPARE_DNSBL if "dnsbl" in layers.available() and dnsbl.recipient_exempt(ctx, rcpt) else _SPARE_NONE
            outcome = engine.recipient(ctx, rcpt) or engine.envelope(ctx, spared)
            if spared and (res := ctx.runner.peek("dnsbl")) is not None and res.symbols:
                ctx.add_trace(f"dnsbl[{addr}]", "exempt", "allow-listed recipient: the zones do not refuse it")
            if outcome is not None and outcome.action in (Action.REJECT, Action.TEMPFAIL):
                return self._refuse_rcpt(ctx, addr, outcome.reply or DEFAULT_TEMPFAIL, outcome.action.value,
                                         outcome.reason)
            # A bounce is refused or delivered whole: recipients it would be delivered to (a
            # valid tag) and ones it would be refused for (no tag) go in separate transactions.
            # After the policy: a recipient refused anyway (unknown, relay) has its answer now
            bounce = backscatter.bounce_class(ctx, addr, is_local) if "backscatter" in layers.available() else None
            if bounce is not None and ctx.facts.get(backscatter.BOUNCE_CLASS, bounce) != bounce:
                return self._refuse_rcpt(ctx, addr, backscatter.MIXED_BOUNCE_DEFER, "tempfail",
                                         f"bounce recipient to be {bounce}, after ones to be "
                                         f"{ctx.facts[backscatter.BOUNCE_CLASS]}")
            if outcome is not None:
                rcpt.outcome = outcome
            ctx.recipients.append(rcpt)
            if bounce is not None:
                ctx.facts.setdefault(backscatter.BOUNCE_CLASS, bounce)
            ctx.note(f"RCPT TO:<{addr}> -> 250 accepted")
            return StepDecision()
        except LayerFailure as e:
            return self._refuse_rcpt(ctx, address.strip("<>"), DEFAULT_TEMPFAIL, "tempfail", str(e))
        except Exception as e:
            log.exception("rcpt step failed")
            return self._refuse_rcpt(ctx, address.strip("<>"), INTERNAL_ERROR, "tempfail", f"internal error: {e}")

    def _refuse_rcpt(self, ctx: MessageContext, addr: str, reply: Reply, action: str, reason: str = "") -> StepDecision:
        ctx.rejected_recipients.append((addr, str(reply)))
        ctx.note(f"RCPT TO:<{addr}> -> {reply}")
        if reason:
            ctx.facts.setdefault("rcpt_reasons", {})[addr] = reason
        return StepDecision("reject" if reply.code.startswith("5") else "tempfail", reply)

    def eom(self, ctx: MessageContext) -> EomDecision:
        """Decide, store quarantined copies, compute changes. Never raises."""
        assert ctx.runner is not None
        try:
            ctx.runner.enter_stage(Stage.EOM, ctx)  # (it asks the layers whether to judge again)
            self._prefetch(ctx, _eom_prefetching_layers())
            decision = self._eom(ctx)
        except LayerFailure as e:
            ctx.outcome = Outcome.tempfail(DEFAULT_TEMPFAIL, str(e), f"layer:{e.layer_id}")
            decision = EomDecision(Action.TEMPFAIL, DEFAULT_TEMPFAIL)
        except Exception as e:
            log.exception("end-of-message processing failed")
            ctx.add_trace("gateway", "error", f"{type(e).__name__}: {e}")
            ctx.outcome = Outcome.tempfail(INTERNAL_ERROR, f"internal error: {type(e).__name__}: {e}", "gateway")
            decision = EomDecision(Action.TEMPFAIL, INTERNAL_ERROR)
        if decision.action is Action.TEMPFAIL:
            self.withdraw_quarantined(ctx)
        ctx.note(f"END-OF-MESSAGE -> {decision.action.value}" + (f" {decision.reply}" if decision.reply else ""))
        return decision

    def withdraw_quarantined(self, ctx: MessageContext) -> None:
        """Copies stored for a transaction that ends in a tempfail after all (a later step
        failed, the time budget ran out): the client sends the message again and it is judged
        again, so they are removed; else every retry left one more, listed in the log under a
        tempfail. A copy that cannot be removed stays, and stays listed."""
        delete = getattr(self.quarantine, "delete", None)
        if delete is None:
            return
        for m in list(ctx.quarantined):
            try:
                delete(m["path"])
            except Exception:
                log.warning("a quarantined copy of a tempfailed message was left: %s", m.get("qid"), exc_info=True)
                continue
            if m in ctx.quarantined:  # (the front and the abandoned work may both withdraw)
                ctx.quarantined.remove(m)
            ctx.add_trace("quarantine", "withdrawn", f"{m.get('qid')}: the message was tempfailed")

    def _eom(self, ctx: MessageContext) -> EomDecision:
        engine = engine_for(ctx.policy)
        outcome = engine.message(ctx)
        ctx.outcome = outcome
        if outcome.action in (Action.REJECT, Action.TEMPFAIL):
            return EomDecision(outcome.action, outcome.reply)
        if outcome.action is Action.DISCARD:
            return EomDecision(Action.DISCARD)
        _untag_and_sign(ctx)

        # Recipients quarantined: by the message outcome, or each by its own RCPT-time outcome.
        held: dict[QuarantineQueue, list[Recipient]] = {}
        reasons: dict[QuarantineQueue, str] = {}
        for r in ctx.recipients:
            o = outcome if outcome.action is Action.QUARANTINE else r.outcome
            if o is not None and o.action is Action.QUARANTINE:
                q = o.queue or QuarantineQueue.USER
                held.setdefault(q, []).append(r)
                reasons.setdefault(q, o.reason)
        dec = EomDecision(Action.ACCEPT)
        if held:
            if ctx.abandoned:
                raise RuntimeError("transaction abandoned after its time budget")
            raw = ctx.raw_bytes()
            for q, rcpts in held.items():
                addrs = delivered_addresses(ctx, rcpts)
                stored = self.quarantine.store(raw, self._quarantine_meta(ctx, q, reasons[q], addrs))
                qid = stored["qid"]
                ctx.quarantined.append(stored)
                if ctx.abandoned:  # answered 4xx while the copy was written: withdrawn with the others
                    raise RuntimeError("transaction abandoned after its time budget")
                dec.quarantine_ids.append(qid)
                ctx.add_trace("quarantine", "stored", f"{q.value} {qid} for {len(rcpts)} recipient(s)")
            held_addrs = {r.address for rs in held.values() for r in rs}
            remaining = [r for r in ctx.recipients if r.address not in held_addrs]
            if not remaining and not outcome.add_recipients:
                # Every copy is stored durably: the message is accepted and not delivered.
                return EomDecision(Action.DISCARD, quarantine_ids=dec.quarantine_ids)
            # (with none left, a redirect :copy still delivers to its target: below)
            dec.delete_recipients = sorted(held_addrs)

        # Transforms for the delivered copy (headers, strip, spam headers, A-R, DKIM last).
        services = _Services(self, ctx)
        for edit in outcome.header_edits:
            dec.header_edits.append(edit)
        if outcome.header_edits:
            # the MTA applies the policy's edits first: the transforms' edits (a delete names an
            # occurrence) are computed on the message as they leave it
            ctx.apply_delivery_changes(list(outcome.header_edits), None)
        dec.add_recipients = list(outcome.add_recipients)
        if outcome.drop_recipients and dec.add_recipients:
            # redirect without :copy: only the new recipients get the message
            kept = [r.address for r in ctx.recipients if r.address not in set(dec.delete_recipients)]
            dec.delete_recipients = sorted(set(dec.delete_recipients) | set(kept))
            ctx.add_trace("policy", "redirect", f"delivered to {', '.join(dec.add_recipients)} instead")
        for fn in transforms.loaded():
            res = fn(ctx, outcome, services)
            if res is None:
                continue
            dec.header_edits.extend(res.header_edits)
            if res.new_body is not None:
                dec.new_body = res.new_body
            # later transforms (DKIM signing last) see the message as it will be delivered
            ctx.apply_delivery_changes(res.header_edits, res.new_body)
        dec.quarantine_ids = [m["qid"] for m in ctx.quarantined]
        cs = ctx.facts.get("change_sender")
        if isinstance(cs, str):
            dec.change_sender = cs
        rewrite = _rewritten(ctx)
        if rewrite:
            gone = set(dec.delete_recipients)
            # a plain twin delivered already (bob@ beside prvs=...=bob@) is not added twice
            delivered = {r.address.lower() for r in ctx.recipients if r.address not in gone}
            given = {r.address: r.esmtp for r in ctx.recipients}
            for old, new in rewrite.items():
                if old not in gone and new != old:
                    dec.delete_recipients.append(old)
                    # a plain twin quarantined (or redirected away) is not added back
                    if new not in dec.add_recipients and new not in gone and new.lower() not in delivered:
                        dec.add_recipients.append(new)
                        if params := dsn_params(given.get(old, ())):
                            dec.add_recipient_params[new] = params
                    ctx.add_trace("backscatter", "rewrite", f"recipient {old} delivered as {new}")
        return dec

    def _quarantine_meta(self, ctx: MessageContext, q: QuarantineQueue, reason: str, rcpts: list[str]) -> dict[str, Any]:
        return {
            "log_id": ctx.log_id,
            "queue": q.value,
            "created": time.time(),
            "mail_from": ctx.mail_from,
            "header_from": _decoded(ctx.header("From")),
            "subject": _decoded(ctx.header("Subject")),
            "recipients": rcpts,
            "reason": reason,
            "size": ctx.size,
            "score": ctx.score,
            "direction": ctx.direction.value,
            "client_ip": ctx.conn.client_ip,
        }

    # -- the log record -------------------------------------------------------------------------
    def finish(self, ctx: MessageContext, final: Action | None = None, reply: Reply | None = None,
               reason: str = "") -> dict[str, Any]:
        """Emit the message-log record for this transaction (also for refusals before DATA)."""
        outcome = ctx.outcome
        if final is None:
            if outcome is not None:
                final = outcome.action
            elif any(rep.startswith("5") for _, rep in ctx.rejected_recipients):
                final = Action.REJECT
            else:
                final = Action.TEMPFAIL
        if not reason:
            if outcome is not None:
                reason = outcome.reason
            elif ctx.rejected_recipients:
                reason = ctx.rejected_recipients[0][1]
        _queue_autolearn(ctx, final)
        per_rcpt = []
        # a recipient is logged held only when the message was not refused or deferred after all
        # (a 4xx at end of data withdraws the copies: it was logged "quarantine" beside it); and
        # every recipient of a quarantined message is held, also when a redirect :copy made the
        # MTA's answer an accept (they were logged "accept")
        kept = final in (Action.ACCEPT, Action.DISCARD, Action.QUARANTINE)
        held_all = outcome is not None and outcome.action is Action.QUARANTINE
        # a BATV-tagged recipient is logged under the address it is delivered to (its user's
        # log, a search for the address, the quarantine entry's recipients name that one)
        plain = _rewritten(ctx)
        logged: set[str] = set()
        for r in ctx.recipients:
            act = final.value
            if kept and (held_all or (outcome is not None and outcome.action is Action.ACCEPT
                                      and r.outcome is not None and r.outcome.action is Action.QUARANTINE)):
                act = "quarantine"
            address = plain.get(r.address, r.address)
            if address.lower() in logged:
                continue  # (a tagged twin of a plain recipient: one delivery)
            logged.add(address.lower())
            per_rcpt.append({"address": address, "domain": r.domain, "action": act,
                             "reply": str(reply) if reply else ""})
        for addr, rep in ctx.rejected_recipients:
            per_rcpt.append({"address": addr, "domain": split_address(addr)[1],
                             "action": "tempfail" if rep.startswith("4") else "reject", "reply": rep})
        rec = {
            "log_id": ctx.log_id,
            "time": ctx.started,
            "node": self.node,
            "direction": ctx.direction.value,
            "client_ip": ctx.conn.client_ip or None,
            "client_name": ctx.conn.client_name,
            "helo": ctx.conn.helo,
            "auth_user": ctx.conn.auth_user,
            "mail_from": ctx.mail_from,
            "header_from": _decoded(ctx.header("From")),
            "subject": _decoded(ctx.header("Subject")),
            "message_id": (ctx.header("Message-ID") or "").strip()[:500],
            "queue_id": ctx.queue_id,
            "size": ctx.size if ctx.headers else 0,
            "score": ctx.score,
            "action": final.value,
            "reason": reason[:500],
            "symbols": _symbol_records(ctx),
            "trace": [{"source": t.source, "event": t.event, "detail": t.detail[:500], "ms": t.ms} for t in ctx.trace],
            "transcript": ctx.transcript,
            "recipients": per_rcpt,
            "quarantine": list(ctx.quarantined),
            "policy_version": ctx.policy.version,
        }
        try:
            self.log_sink.emit(rec)
        except Exception:
            log.exception("message log emit failed for %s", ctx.log_id)
        return rec


def _symbol_records(ctx: MessageContext) -> list[dict[str, Any]]:
    """The message's symbols for the log: each with its own score (the rule file's, the
    layer's) and, once a total was judged, ``points``: what it added to that total (the
    fitted score it counted with; 0 where its layer is not scored or the mail was exempt)."""
    counted = counted_points(ctx)
    out: list[dict[str, Any]] = []
    for s in ctx.symbols:
        rec: dict[str, Any] = {"name": s.name, "score": s.score, "detail": s.detail[:200], "layer": s.layer}
        if counted is not None:
            rec["points"] = counted.get(id(s), 0.0)
        out.append(rec)
    return out


class _Services:
    def __init__(self, gw: Gateway, ctx: MessageContext) -> None:
        self.gw = gw
        self.ctx = ctx

    def quarantine_copy(self, ctx: MessageContext, queue: QuarantineQueue, reason: str,
                        recipients: list[str] | None = None) -> str:
        if recipients is None:
            # the recipients the message goes to: as delivered (a BATV-tagged one under the address
            # its tag was made for), not those held at RCPT, whose copy is in their own quarantine
            # entry (a release of this copy delivered to a prvs= address and to them once more)
            recipients = delivered_addresses(ctx, [r for r in ctx.recipients
                                                   if r.outcome is None or r.outcome.action is not Action.QUARANTINE])
        raw = ctx.received_bytes()
        stored = self.gw.quarantine.store(raw, self.gw._quarantine_meta(ctx, queue, reason, recipients))
        qid = str(stored["qid"])
        ctx.quarantined.append(stored)
        if ctx.abandoned:  # (as for the held copies: withdrawn with the message's 4xx)
            raise RuntimeError("transaction abandoned after its time budget")
        ctx.add_trace("quarantine", "stored", f"{queue.value} {qid} (copy: {reason})")
        return qid


def _queue_autolearn(ctx: MessageContext, final: Action) -> None:
    """Autolearn's item, decided by the scoring layer, queued now the answer is known: spam when
    the message was refused, held or discarded (what the gateway flagged and held), ham when it
    was delivered whole; a deferred message is learned at its retry, if at all. A rule or script
    after scoring that refused a clean message made it learned as ham."""
    pending, ctx.autolearn_pending = ctx.autolearn_pending, None
    if pending is None:
        return
    store, item = pending
    label = "spam" if item.is_spam else "ham"
    if item.is_spam:
        wanted = final in (Action.REJECT, Action.QUARANTINE, Action.DISCARD)
    else:
        wanted = final is Action.ACCEPT and not ctx.quarantined
    if not wanted:
        ctx.add_trace("bayes", "autolearn", f"not learned as {label}: the answer was {final.value}")
        return
    from gateway_milter.antispam.learner import learner

    try:
        learner().submit(store, item)
    except Exception:
        log.warning("bayes autolearn failed", exc_info=True)


def delivered_addresses(ctx: MessageContext, rcpts: list[Recipient]) -> list[str]:
    """The recipients' addresses as they are delivered, each once: a BATV-tagged one under the
    address its tag was made for (backscatter's ``rewrite_recipients``), where a release of a
    quarantined copy delivers too."""
    plain = _rewritten(ctx)
    return list(dict.fromkeys(plain.get(r.address, r.address) for r in rcpts))


def dsn_params(esmtp: tuple[str, ...]) -> tuple[str, ...]:
    """The RCPT parameters of RFC 3461 (``NOTIFY=``, ``ORCPT=``) among *esmtp*, as the client
    wrote them: what a recipient put in its place carries on (Postfix's cleanup takes these two
    from a milter's added recipient and ignores the others with a warning)."""
    return tuple(p for p in esmtp if p.split("=", 1)[0].upper() in ("NOTIFY", "ORCPT"))


def _rewritten(ctx: MessageContext) -> dict[str, str]:
    """backscatter's ``rewrite_recipients``: tagged address -> the address it is delivered to."""
    plain = ctx.facts.get("rewrite_recipients")
    return plain if isinstance(plain, dict) else {}


def _decoded(value: str | None) -> str:
    if not value:
        return ""
    return " ".join(decode_text(value).split())[:500]


def all_layer_ids() -> list[str]:
    return layers.available()


def _domain_prefetching_layers(snap: PolicySnapshot, domain: str | None) -> list[str]:
    """Layers to prefetch again once inbound mail's recipient domain is known (its first RCPT):
    those whose settings for the domain differ from the global ones (a domain's own DNSBL zones,
    SPF turned on for one domain). The others started at connect and MAIL with the same
    settings. Computed once per policy snapshot and domain (local domains only)."""
    if domain is None:
        return []
    key = f"domain_prefetch:{domain}"
    todo = snap.compiled.get(key)
    if todo is None:
        todo = snap.compiled[key] = [lid for lid in _prefetching_layers()
                                     if snap.settings_for(lid, domain) != snap.settings_for(lid, None)]
    return todo  # type: ignore[no-any-return]


_PREFETCHING: list[str] | None = None
_EOM_PREFETCHING: list[str] | None = None


def _eom_prefetching_layers() -> list[str]:
    """Layers whose ``prefetch`` needs the message (``prefetch_at_eom``): called only when end
    of message starts, before the policy asks any layer (computed once per process)."""
    _prefetching_layers()
    assert _EOM_PREFETCHING is not None
    return _EOM_PREFETCHING


def _prefetching_layers() -> list[str]:
    """Layers that override ``Layer.prefetch`` and start their lookups before the message
    exists (at connect, MAIL and RCPT); those that need the message are called at end of
    message only (computed once per process)."""
    global _PREFETCHING, _EOM_PREFETCHING
    if _PREFETCHING is None:
        from gateway_milter.layers.base import Layer

        overriding = [lid for lid in layers.available() if type(layers.get(lid)).prefetch is not Layer.prefetch]
        _EOM_PREFETCHING = [lid for lid in overriding if layers.get(lid).prefetch_at_eom]
        _PREFETCHING = [lid for lid in overriding if not layers.get(lid).prefetch_at_eom]
    return _PREFETCHING
