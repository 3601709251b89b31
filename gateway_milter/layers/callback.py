"""Sender callback verification ("callout", RFC 5321 sections 3.3 and 4.1.1.3).

Ask the sender domain's mail exchanger whether it would accept mail for the envelope sender:
connect to its MX hosts (RFC 5321 section 5.1 order; the domain's own A/AAAA as implicit MX),
``EHLO``, ``MAIL FROM:<>`` (null sender, so that nothing can be delivered), ``RCPT TO:<sender>``
(or ``VRFY`` first when ``use_vrfy``), ``QUIT``. A 5xx to RCPT is a failure; anything
temporary (4xx, time-out, connection refused, DNS trouble) is "unknown" and gives no symbol.

Answers are cached in the shared state store (``cb:<address>``): positive for
``positive_ttl_s``, negative for ``negative_ttl_s``; temporary answers are not cached. The
whole check is bounded by ``timeout_s`` and the stage budget. Runs at RCPT so that it only
runs for a transaction with a recipient. The sender address is validated before it reaches
an SMTP command (no CR/LF or angle brackets can pass).

Symbols: ``CALLBACK_PASS``, ``CALLBACK_FAIL``, ``CALLBACK_NULL_SENDER_REFUSED`` (the MX
refuses the null sender, breaking RFC 5321 section 4.5.5). Facts: ``result``, ``host``,
``reply``, ``cached``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from gateway_milter.auth.exemptions import action_rule, check_action, exemption, score_of
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.net.resolver import get_resolver
from gateway_milter.verdict import FailMode, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

log = logging.getLogger("bulwark.callback")
DEFAULT_SCORES: dict[str, float] = {"CALLBACK_PASS": 0.0, "CALLBACK_FAIL": 3.0, "CALLBACK_NULL_SENDER_REFUSED": 1.0}
ADDRESS_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


@dataclass(frozen=True, slots=True)
class CallbackSettings(BaseSettings):
    mode: str = "off"  # callouts cost the sender's MX a connection: opt-in
    fail_action: str = "score"
    port: int = 25
    timeout_s: float = 15.0
    max_hosts: int = 2
    use_vrfy: bool = False
    helo_name: str = ""  # default: the gateway hostname
    allow_private_targets: bool = False  # MX records pointing at loopback/private space are skipped
    positive_ttl_s: int = 86400
    negative_ttl_s: int = 3600
    scores: dict[str, float] = field(default_factory=dict)

    # connections the gateway opens (private targets, ports) and the callout cache every domain reads
    global_only_fields: ClassVar[frozenset[str]] = frozenset({
        "allow_private_targets", "port", "helo_name", "timeout_s", "max_hosts", "positive_ttl_s",
        "negative_ttl_s"})

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        check_action("fail_action", self.fail_action)
        if not 0 < self.port < 65536:
            raise SettingsError("port", "must be 1..65535")
        if not 1 <= self.max_hosts <= 5:
            raise SettingsError("max_hosts", "must be 1..5")
        if not 0.5 <= self.timeout_s <= 60:
            raise SettingsError("timeout_s", "must be between 0.5 and 60 seconds")


@dataclass(frozen=True, slots=True)
class CalloutResult:
    result: str  # pass | fail | null_refused | unknown
    host: str = ""
    reply: str = ""


class _Smtp:
    """A minimal SMTP client with a hard deadline (smtplib cannot bound the whole dialogue)."""

    def __init__(self, host: str, port: int, deadline: float) -> None:
        self.deadline = deadline
        self.sock = socket.create_connection((host, port), timeout=self._left())
        self.buf = b""

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("callback time budget spent")
        return left

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            while b"\n" not in self.buf:
                self.sock.settimeout(self._left())
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError("connection closed")
                self.buf += chunk
                if len(self.buf) > 65536:
                    raise ConnectionError("reply too long")
            line, _, self.buf = self.buf.partition(b"\n")
            text = line.decode("utf-8", "replace").rstrip("\r")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                break
        code = int(lines[-1][:3]) if lines[-1][:3].isdigit() else 0
        return code, " ".join(x[4:] for x in lines)[:300]

    def cmd(self, line: str) -> tuple[int, str]:
        self.sock.settimeout(self._left())
        self.sock.sendall(line.encode("ascii") + b"\r\n")
        return self.reply()

    def close(self) -> None:
        try:
            self.sock.settimeout(1.0)
            self.sock.sendall(b"QUIT\r\n")
        except OSError:
            pass
        self.sock.close()


def callout(address: str, hosts: list[str], *, port: int = 25, helo: str = "localhost", timeout: float = 15.0,
            use_vrfy: bool = False) -> CalloutResult:
    """Probe ``hosts`` (addresses, in order) for ``address``; the first definite answer wins."""
    if not ADDRESS_RE.match(address):
        raise ValueError("not a plain mailbox address")
    deadline = time.monotonic() + timeout
    for host in hosts:
        try:
            s = _Smtp(host, port, deadline)
        except OSError:
            continue
        try:
            code, text = s.reply()
            if code != 220:
                continue
            code, text = s.cmd(f"EHLO {helo}")
            if code != 250:
                code, text = s.cmd(f"HELO {helo}")
                if code != 250:
                    continue
            if use_vrfy:
                code, text = s.cmd(f"VRFY <{address}>")
                if code in (250, 251):
                    return CalloutResult("pass", host, f"{code} {text}")
                if code in (550, 551, 553):
                    return CalloutResult("fail", host, f"{code} {text}")
            code, text = s.cmd("MAIL FROM:<>")
            if 500 <= code < 600:
                return CalloutResult("null_refused", host, f"{code} {text}")
            if code != 250:
                continue
            code, text = s.cmd(f"RCPT TO:<{address}>")
            if code in (250, 251):
                return CalloutResult("pass", host, f"{code} {text}")
            if 500 <= code < 600:
                return CalloutResult("fail", host, f"{code} {text}")
            return CalloutResult("unknown", host, f"{code} {text}")
        except (OSError, ValueError) as e:
            log.debug("callback to %s failed: %s", host, e)
            continue
        finally:
            s.close()
    return CalloutResult("unknown", "", "no mail exchanger gave an answer")


class CallbackLayer(Layer[CallbackSettings]):
    id = "callback"
    stage = Stage.RCPT
    fail_mode = FailMode.UNKNOWN
    Settings = CallbackSettings
    budget_s = 15.0
    title = "Callback verification"
    description = "Sender callback verification against the sender domain's mail exchangers"

    def check(self, ctx: MessageContext, settings: CallbackSettings) -> LayerFindings:
        def sym(name: str, detail: str = "") -> Any:
            return self.symbol(name, score_of(settings.scores, DEFAULT_SCORES, name), detail)

        why = exemption(ctx)
        if why:
            return LayerFindings({"exempt": why})
        sender = ctx.mail_from.strip("<> ").lower()
        if not sender:
            return LayerFindings({"exempt": "null sender"})
        if not ADDRESS_RE.match(sender):
            return LayerFindings({"result": "unknown", "error": "sender address not verifiable"})
        if ctx.policy.is_local_domain(ctx.sender_domain):
            return LayerFindings({"exempt": "local sender domain"})
        store = _store()
        key = f"cb:{sender}"[:500]
        cached = None
        if store is not None:
            try:
                cached = store.get(key)
            except Exception:  # noqa: BLE001 - the cache is an optimisation only
                cached = None
        if cached in ("pass", "fail", "null_refused"):
            r = CalloutResult(cached)
            facts: dict[str, Any] = {"result": cached, "cached": True}
        elif ctx.scan_mode:
            # `manage.py scan` judges from the cache only: a corpus scored offline must not probe
            # every forged sender's servers, nor leave its answers for the live gateway to use
            return LayerFindings({"result": "unknown", "skipped": "scan mode: no live callout"})
        else:
            timeout = settings.timeout_s
            if ctx.runner is not None:
                timeout = min(timeout, ctx.runner.remaining(settings.timeout_s))
            hosts = self._hosts(ctx, ctx.sender_domain, settings)
            if hosts is None:
                return LayerFindings({"result": "unknown", "error": "DNS temporary error"})
            if not hosts:
                return LayerFindings({"result": "unknown", "error": "sender domain has no mail exchanger"})
            r = callout(sender, hosts, port=settings.port, helo=settings.helo_name or ctx.policy.hostname,
                        timeout=max(0.5, timeout), use_vrfy=settings.use_vrfy)
            facts = {"result": r.result, "host": r.host, "reply": r.reply, "cached": False}
            if store is not None and r.result != "unknown":
                ttl = settings.positive_ttl_s if r.result == "pass" else settings.negative_ttl_s
                try:
                    store.set(key, r.result, ttl)
                except Exception as e:  # noqa: BLE001 - the cache is an optimisation only
                    log.debug("callback cache not written: %s", e)
        symbols = []
        if r.result == "pass":
            symbols.append(sym("CALLBACK_PASS", sender))
        elif r.result == "fail":
            symbols.append(sym("CALLBACK_FAIL", sender))
        elif r.result == "null_refused":
            symbols.append(sym("CALLBACK_NULL_SENDER_REFUSED", sender))
        return LayerFindings(facts, tuple(symbols))

    def _hosts(self, ctx: MessageContext, domain: str, settings: CallbackSettings) -> list[str] | None:
        """Addresses to try, MX order (None: temporary DNS error)."""
        res, budget = get_resolver(), self.dns_budget(ctx)
        mx = res.query_mx(domain, budget)
        if mx.temporary:
            return None
        names = [h for _, h in sorted(mx.records)] if mx.ok else [domain]
        if names == [""] or names == ["."]:  # RFC 7505 null MX: the domain takes no mail
            return []
        out: list[str] = []
        for name in names[: settings.max_hosts]:
            a4, a6 = res.query_addresses(name, budget)
            out += list(a4.records if a4.ok else ()) + list(a6.records if a6.ok else ())
        if not settings.allow_private_targets:
            # a sender's DNS must not make us connect into our own networks
            out = [a for a in out if _public(a)]
        return out[: settings.max_hosts * 2]

    def policy_rules(self, settings: CallbackSettings) -> list[PolicyRule]:
        rule = action_rule("callback_fail", "CALLBACK_FAIL", settings.fail_action,
                           Reply("550", "5.1.7", "Sender address rejected: the sender's mail server does not know it"),
                           "callback verification failed")
        return [rule] if rule else []


def _public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified)


def _store() -> Any:
    try:
        from gateway_milter.store import default_store

        return default_store()
    except Exception:  # noqa: BLE001 - no store: no cache
        return None
