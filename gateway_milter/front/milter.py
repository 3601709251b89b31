"""pymilter callbacks -> the transaction driver.

One :class:`BulwarkMilter` object exists per SMTP connection (libmilter may run its callbacks
on different worker threads, so all state lives on the object). Every callback is guarded: an
exception becomes ``451 4.3.0`` (tempfail), never an accept.

Macros read (Postfix names; configure ``milter_*_macros`` as in docs/operations/postfix.md):
``j`` (MTA host name), ``{daemon_name}``, ``{client_addr}``, ``{client_name}``,
``{client_ptr}``, ``{auth_authen}``, ``{auth_type}``, ``{mail_addr}``, ``{rcpt_addr}``,
``i`` (queue id, from the first accepted RCPT on), ``{tls_version}``, ``{cipher}``.
"""

from __future__ import annotations

import functools
import logging
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import Milter

from gateway_milter.context import ConnectionInfo, MessageContext
from gateway_milter.pipeline.runner import STAGE_BUDGET_S
from gateway_milter.pipeline.transaction import INTERNAL_ERROR, EomDecision, Gateway
from gateway_milter.verdict import Action, HeaderEdit, Reply, Stage, smtp_reply_text

log = logging.getLogger("bulwark.milter")

# Macros read at each stage (each read is a call into libmilter, so only where they are sent).
CONNECT_MACROS = ("j", "{daemon_name}", "{client_addr}", "{client_name}", "{client_ptr}", "{client_resolve}")
HELO_MACROS = ("{tls_version}", "{cipher}")
MAIL_MACROS = ("{auth_authen}", "{auth_type}", "{mail_addr}")
EOM_MACROS = ("i",)

# libmilter's answers, typed (pymilter itself is untyped)
CONTINUE: int = Milter.CONTINUE
ACCEPT: int = Milter.ACCEPT
REJECT: int = Milter.REJECT
TEMPFAIL: int = Milter.TEMPFAIL
DISCARD: int = Milter.DISCARD

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

BUDGET_EXCEEDED = Reply("451", "4.4.5", "Message processing took too long, please try again later")


class _StageRunner:
    """Runs end-of-message work on a small pool of long-lived threads so that the libmilter
    thread can answer 4xx itself when the work overruns its budget (a stuck layer cannot hold
    the SMTP session past Postfix's timeouts). A hand-off costs one queue put and one lock
    release, lighter than concurrent.futures (measured: the Future/Condition machinery was a
    quarter of the milter's CPU under load)."""

    def __init__(self, workers: int = 32) -> None:
        self._q: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], Any]] = queue.SimpleQueue()
        for i in range(workers):
            threading.Thread(target=self._loop, name=f"stage-{i}", daemon=True).start()

    def _loop(self) -> None:
        while True:
            fn, box, done = self._q.get()
            try:
                box.append(fn())
            except BaseException as e:  # noqa: BLE001 - re-raised in the waiting thread
                box.append(_Raised(e))
            done.release()

    def run(self, stage: Stage, fn: Callable[[], T]) -> T | None:
        """``fn()`` within the stage's budget; None when it overran (the work is abandoned)."""
        done = threading.Lock()
        done.acquire()
        box: list[Any] = []
        self._q.put((fn, box, done))
        if not done.acquire(timeout=STAGE_BUDGET_S[stage] + 1.0):
            log.error("%s stage overran its %.0f s budget; answering 4xx", stage.value, STAGE_BUDGET_S[stage])
            return None
        result = box[0]
        if isinstance(result, _Raised):
            raise result.error
        return result  # type: ignore[no-any-return]


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_STAGES = _StageRunner()


def within_budget(stage: Stage, fn: Callable[[], T]) -> T | None:
    return _STAGES.run(stage, fn)


def _guard(fn: F, on_error: Callable[[BulwarkMilter, str], int]) -> F:
    @functools.wraps(fn)
    def wrapper(self: BulwarkMilter, *args: Any) -> Any:
        try:
            return fn(self, *args)
        except Exception:
            log.exception("milter callback %s failed", fn.__name__)
            return on_error(self, fn.__name__)

    return wrapper  # type: ignore[return-value]


def _answer_now(m: BulwarkMilter, name: str) -> int:
    if m.ctx is not None:
        m.ctx.add_trace("milter", "error", f"exception in {name}")
    try:
        m._reply(INTERNAL_ERROR)
    except Exception:  # noqa: BLE001
        pass
    if name == "eom" and m.ctx is not None and not m._finished:
        # the message ends here in a 451 (a refusal whose reply libmilter would not take):
        # logged as that, and no copy kept for it, as the client sends it again
        try:
            m.gateway.withdraw_quarantined(m.ctx)
            m._finish(Action.TEMPFAIL, INTERNAL_ERROR)
        except Exception:
            log.exception("ending a failed end of message failed")
    return TEMPFAIL


def _answer_later(m: BulwarkMilter, name: str) -> int:
    if name in ("connect", "hello"):
        m._conn_failed = name
    else:
        m._msg_failed = name
    return CONTINUE


def guarded(fn: F) -> F:
    """Turn any exception in a callback into a 4xx tempfail."""
    return _guard(fn, _answer_now)


def deferred(fn: F) -> F:
    """For callbacks Postfix need not wait for (no-reply): an exception is remembered and
    answered with 4xx at the next callback that replies (MAIL, RCPT or end of message)."""
    return _guard(fn, _answer_later)


class BulwarkMilter(Milter.Base):  # type: ignore[misc]
    gateway: Gateway  # set by the daemon before libmilter starts

    def __init__(self) -> None:
        self.conn: ConnectionInfo | None = None
        self.ctx: MessageContext | None = None
        self._finished = True
        self._conn_failed: str | None = None  # a no-reply callback of the connection failed
        self._msg_failed: str | None = None  # ... of the current message
        # the MTA passes header values with the white space after the colon as written
        # (SMFIP_HDR_LEADSPC, asked for in negotiate) and writes ours as we give them
        self._leadspc = False

    def _deferred_failure(self) -> int | None:
        """TEMPFAIL (with the reply set) when a no-reply callback failed earlier, else None."""
        failed = self._conn_failed or self._msg_failed
        if failed is None:
            return None
        if self.ctx is not None:
            self.ctx.add_trace("milter", "error", f"exception in {failed}")
        self._reply(INTERNAL_ERROR)
        return TEMPFAIL

    # -- helpers ----------------------------------------------------------------------------
    def _macros(self, names: tuple[str, ...]) -> None:
        assert self.conn is not None
        for m in names:
            v = self.getsymval(m)
            if v:
                self.conn.macros[m] = v if isinstance(v, str) else str(v)

    def _reply(self, reply: Reply) -> None:
        # an administrator's refusal text may be longer than libmilter takes (it fails the call)
        text = smtp_reply_text(reply.text, "Message refused")
        self.setreply(reply.code, reply.enhanced, text.replace("%", "%%"))

    def _finish(self, final: Action | None = None, reply: Reply | None = None) -> None:
        if self.ctx is not None and not self._finished:
            self._finished = True
            if self.ctx.recipients or self.ctx.rejected_recipients or self.ctx.outcome is not None:
                self.gateway.finish(self.ctx, final, reply)
            self.ctx.close()
        self.ctx = None

    # -- callbacks --------------------------------------------------------------------------
    def negotiate(self, opts: list[int]) -> int:
        """pymilter's negotiation, and SMFIP_HDR_LEADSPC when the MTA offers it: by default the
        MTA takes one space after a header's colon off the value and puts one back, so
        ``Subject:x`` came back as ``Subject: x`` (a DKIM signature with simple header
        canonicalization then fails) and the rules could not tell either apart (``:raw``)."""
        offered = opts[1]
        rc: int = super().negotiate(opts)
        if rc == CONTINUE and offered & Milter.P_HDR_LEADSPC:
            opts[1] |= Milter.P_HDR_LEADSPC
            self._protocol = opts[1]
            self._leadspc = True
        return rc

    @Milter.noreply  # type: ignore[untyped-decorator]  # Postfix need not wait for an answer
    @deferred
    def connect(self, hostname: str, family: int, hostaddr: Any) -> int:
        ip, port = None, None
        if family in (socket.AF_INET, socket.AF_INET6) and hostaddr:
            if isinstance(hostaddr, (tuple, list)):
                ip, port = hostaddr[0], hostaddr[1]
            else:
                ip = str(hostaddr)
        self.conn = ConnectionInfo(client_ip=ip, client_port=port, client_name=hostname or "")
        self._macros(CONNECT_MACROS)
        self.gateway.connect(self.conn)
        return CONTINUE

    @Milter.noreply  # type: ignore[untyped-decorator]
    @deferred
    def hello(self, heloname: str) -> int:
        assert self.conn is not None
        self.conn.helo = heloname or ""
        self._macros(HELO_MACROS)
        return CONTINUE

    @guarded
    def envfrom(self, mailfrom: str, *esmtp: str) -> int:
        assert self.conn is not None
        self._finish()
        self._msg_failed = None
        if (failed := self._deferred_failure()) is not None:
            return failed
        self._macros(MAIL_MACROS)
        self.ctx = self.gateway.begin(self.conn)
        self._finished = False
        if self.conn.helo:
            self.ctx.note(f"HELO {self.conn.helo}")
        d = self.gateway.mail(self.ctx, mailfrom, tuple(esmtp))
        return self._step(d)

    @guarded
    def envrcpt(self, to: str, *esmtp: str) -> int:
        assert self.ctx is not None
        if (failed := self._deferred_failure()) is not None:
            return failed
        # RCPT work runs inline: its layers are bounded by the runner's stage budget and their
        # own network time-outs; Postfix's milter_command_timeout (answering per
        # milter_default_action = tempfail) is the backstop.
        d = self.gateway.rcpt(self.ctx, to, tuple(esmtp))
        return self._step(d)

    def _step(self, d: Any) -> int:
        if d.action == "continue":
            return CONTINUE
        self._reply(d.reply)
        return REJECT if d.action == "reject" else TEMPFAIL

    # Headers, body chunks and DATA are streamed without a reply (Postfix does not wait for one
    # per header: fewer round trips); nothing is judged before end of message anyway.
    @Milter.noreply  # type: ignore[untyped-decorator]
    @deferred
    def data(self) -> int:
        # Defining data() keeps Postfix from a Nagle/delayed-ACK stall on inet sockets.
        if self.ctx is not None:
            self.ctx.note("DATA")
        return CONTINUE

    @Milter.noreply  # type: ignore[untyped-decorator]
    @deferred
    @Milter.decode("bytes")  # type: ignore[untyped-decorator]
    def header(self, name: str, value: bytes) -> int:
        assert self.ctx is not None
        v = value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
        if self._leadspc:
            self.ctx.add_raw_header(name, v)
        else:
            self.ctx.add_header(name, v)
        return CONTINUE

    def header_bytes(self, fld: str, val: bytes) -> int:
        """What libmilter's header callback calls: the value as bytes to header(). pymilter's
        own does the same for @decode("bytes") by storing ``self.header`` on the instance, a
        reference cycle that kept each connection's milter and message context until the next
        garbage collection."""
        return self.header(fld, val)  # type: ignore[no-any-return]

    @Milter.noreply  # type: ignore[untyped-decorator]
    @deferred
    def body(self, chunk: bytes) -> int:
        assert self.ctx is not None
        self.ctx.body.write(chunk)
        return CONTINUE

    @guarded
    def eom(self) -> int:
        assert self.ctx is not None
        ctx = self.ctx
        if (failed := self._deferred_failure()) is not None:
            self._finish(Action.TEMPFAIL, INTERNAL_ERROR)
            return failed
        self._macros(EOM_MACROS)
        ctx.queue_id = self.conn.macros.get("i", "") if self.conn else ""
        if self.gateway.eom_may_block(ctx):
            d = within_budget(Stage.EOM, lambda: self.gateway.eom(ctx))
        else:
            # only local CPU work (lists, size, relay, direction, Sieve, transforms, the
            # quarantine file): no thread hand-off; Postfix's milter_content_timeout remains
            # the backstop, answered with 4xx by milter_default_action = tempfail
            d = self.gateway.eom(ctx)
        if d is None:
            ctx.abandoned = True  # a late quarantine write of the abandoned work is skipped
            ctx.add_trace("milter", "budget", "end-of-message budget exceeded")
            self.gateway.withdraw_quarantined(ctx)
            d = EomDecision(Action.TEMPFAIL, BUDGET_EXCEEDED)
        if d.action is Action.REJECT or d.action is Action.TEMPFAIL:
            reply = d.reply or INTERNAL_ERROR
            self._reply(reply)
            self._finish(d.action, reply)
            return REJECT if d.action is Action.REJECT else TEMPFAIL
        if d.action is Action.DISCARD:
            self._finish(Action.QUARANTINE if d.quarantine_ids else Action.DISCARD)
            return DISCARD
        try:
            self._apply(ctx, d)
        except Exception:
            # A half-applied change must not be delivered: tempfail, the client retries.
            log.exception("applying message changes failed")
            self._reply(INTERNAL_ERROR)
            ctx.add_trace("milter", "error", "applying changes failed")
            self.gateway.withdraw_quarantined(ctx)
            self._finish(Action.TEMPFAIL, INTERNAL_ERROR)
            return TEMPFAIL
        self._finish(Action.ACCEPT)
        return ACCEPT

    def _apply(self, ctx: MessageContext, d: Any) -> None:
        for edit in d.header_edits:
            self._header_edit(edit)
        for addr in d.delete_recipients:
            self.delrcpt(f"<{addr}>")
        for addr in d.add_recipients:
            params = d.add_recipient_params.get(addr)
            if params and not self._actions & Milter.ADDRCPT_PAR:
                # an MTA without smfi_addrcpt_par: the recipient is delivered, with the MTA's defaults
                ctx.add_trace("milter", "addrcpt", f"{addr} added without {' '.join(params)}: "
                                                   "the MTA takes no recipient parameters from a milter")
                params = None
            self.addrcpt(f"<{addr}>", " ".join(params) if params else None)
        if d.change_sender is not None:
            self.chgfrom(f"<{d.change_sender}>")
        if d.new_body is not None:
            body = d.new_body
            for i in range(0, len(body), 65536):
                self.replacebody(body[i:i + 65536])

    def _header_edit(self, e: HeaderEdit) -> None:
        # with SMFIP_HDR_LEADSPC the MTA writes "Name:" and the value as given; folds go as bare
        # LF, the MTA writes the line ends (a value kept from a fold the MTA passed as CRLF, as
        # the subject tag keeps the Subject's, handed the MTA a CR inside the value)
        value = e.value.replace("\r\n", "\n")
        if self._leadspc:
            value = " " + value
        if e.op == "add":
            self.addheader(e.name, value)
        elif e.op == "insert":
            self.addheader(e.name, value, 1)
        elif e.op == "change":
            self.chgheader(e.name, e.index, value)
        else:
            self.chgheader(e.name, e.index, "")

    @guarded
    def abort(self) -> int:
        # The client or the MTA ended the transaction before end of message.
        self._finish()
        return CONTINUE

    @guarded
    def close(self) -> int:
        self._finish()
        return CONTINUE
