"""Run-time state of one Sieve execution: the message view, variables, the result.

The result follows RFC 5228 section 2.10: actions are collected in order, the implicit keep is
cancelled by keep/fileinto/redirect/discard/reject (unless ``:copy``, RFC 3894), duplicate
deliveries are merged, and reject/ereject (RFC 5429 section 2.1) conflict with every action that
delivers the message. Limits bound what a hostile script can make us do.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import TYPE_CHECKING, Any, Protocol

from gateway_milter.mime.headers import decode_words

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext, Recipient


def truncate_utf8(v: str, limit: int) -> str:
    if len(v) * 4 <= limit:
        return v
    b = v.encode("utf-8", "surrogateescape")
    if len(b) <= limit:
        return v
    return b[:limit].decode("utf-8", "ignore")


class SieveRuntimeError(Exception):
    """A run-time error; ``line`` is the script line of the command that failed."""

    def __init__(self, message: str, line: int = 0, script: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.script = script

    def __str__(self) -> str:
        where = f"{self.script or 'script'}"
        if self.line:
            where += f" line {self.line}"
        return f"{where}: {self.message}"


class StopScript(Exception):
    pass


class ReturnScript(Exception):
    pass


class BreakLoop(Exception):
    def __init__(self, name: str | None) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True, slots=True)
class Limits:
    max_actions: int = 32
    max_redirects: int = 4
    max_header_edits: int = 64
    max_header_value: int = 2048  # bytes of one added header field (name + value)
    cpu_seconds: float = 0.5
    regex_seconds: float = 0.05
    max_variable_size: int = 4000  # bytes (UTF-8), as Pigeonhole
    max_match_values: int = 32
    max_include_depth: int = 10


DEFAULT_LIMITS = Limits()

DELIVERING = {"keep", "fileinto", "redirect"}


@dataclass(slots=True)
class SieveAction:
    kind: str  # keep fileinto redirect discard reject ereject quarantine refuse tempfail addheader deleteheader ...
    args: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    script: str = ""
    headers: list[tuple[str, str]] | None = field(default=None, repr=False)  # message state when delivered

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"action": self.kind}
        d.update(self.args)
        return d


class Environment(Protocol):
    """What the host (the gateway, the CLI, the test suite) supplies to scripts."""

    @property
    def subaddress_delimiters(self) -> str: ...

    def environment_item(self, name: str) -> str | None: ...
    def spamtest(self, rt: Runtime, percent: bool) -> str: ...
    def virustest(self, rt: Runtime) -> str: ...


class BasicEnvironment:
    """Environment items of RFC 5183 section 4 with gateway values; no spam/virus data."""

    subaddress_delimiters = "+"  # RFC 5233: the separator between user and detail

    def __init__(self, items: dict[str, str] | None = None) -> None:
        self.items = {
            "domain": "localhost",
            "host": "localhost",
            "location": "MTA",
            "name": "Bulwark",
            "phase": "during",
            "version": "1",
        }
        self.items.update(items or {})

    def environment_item(self, name: str) -> str | None:
        return self.items.get(name)

    def editheader_forbidden(self, name: str, op: str) -> bool:
        """RFC 5293 section 6: Received and Auto-Submitted fields are never deleted (adding
        them is allowed, as in Pigeonhole)."""
        return op == "delete" and name.lower() in ("received", "auto-submitted")

    def spamtest(self, rt: Runtime, percent: bool) -> str:
        return "0"

    def virustest(self, rt: Runtime) -> str:
        return "0"


# -- the message --------------------------------------------------------------------------------
class MessageData:
    """The message as Sieve sees it: header list, body bytes and envelope."""

    def __init__(self, headers: list[tuple[str, str]], body: bytes, *, mail_from: str = "",
                 recipients: list[str] | None = None, auth: str = "", raw: bytes | None = None,
                 parsed: Message | None = None) -> None:
        self.headers = headers
        self.body = body
        self.mail_from = mail_from
        self.recipients = list(recipients or [])
        self.auth = auth
        self._raw = raw
        self._parsed = parsed
        self.context: MessageContext | None = None
        self.file_size: int | None = None
        self.has_body = True
        self._body: bytes | None = None
        self.cache: dict[object, object] = {}  # derived views (body texts) shared by all tests

    @classmethod
    def from_bytes(cls, raw: bytes, *, mail_from: str = "", recipients: list[str] | None = None,
                   auth: str = "", size_as_given: bool = True) -> MessageData:
        size = len(raw)
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if raw.startswith(b"From "):
            raw = raw.split(b"\r\n", 1)[1] if b"\r\n" in raw else b""  # mbox separator line
        head, sep, body = raw.partition(b"\r\n\r\n")
        has_body = bool(sep)
        if not sep:
            if raw.startswith(b"\r\n"):
                head, body, has_body = b"", raw[2:], True
            else:
                head, body = raw, b""
        headers: list[tuple[str, str]] = []
        for line in head.split(b"\r\n"):
            if not line:
                continue
            text = line.decode("utf-8", "surrogateescape")
            if line[:1] in (b" ", b"\t") and headers:
                n, v = headers[-1]
                headers[-1] = (n, v + "\r\n" + text)
            elif ":" in text:
                n, _, v = text.partition(":")
                n = n.rstrip(" \t")
                if n and " " not in n and "\t" not in n:
                    headers.append((n, v.removeprefix(" ")))
        md = cls(headers, body, mail_from=mail_from, recipients=recipients, auth=auth)
        md.has_body = has_body
        if size_as_given:
            md.file_size = size  # RFC 5228 5.9: the size of the message as given
        return md

    @classmethod
    def from_context(cls, ctx: MessageContext, rcpt: Recipient | None = None) -> MessageData:
        # local recipients as delivered: without a BATV tag (a prvs= prefix, which anyone can
        # write, made a script keyed on the recipient pass the message by)
        rcpts = [r.plain if r.is_local else r.address for r in ([rcpt] if rcpt is not None else ctx.recipients)]
        md = cls(ctx.headers, b"", mail_from=ctx.mail_from.strip("<>"), recipients=rcpts,
                 auth=ctx.conn.auth_user)
        md.context = ctx
        return md

    def body_bytes(self) -> bytes:
        if self.context is not None:
            if self._body is None:
                self._body = self.context.body.getvalue()  # read the spool once per message
            return self._body
        return self.body

    @property
    def size(self) -> int:
        if self.context is not None:
            return self.context.size
        if self.file_size is not None:
            return self.file_size
        return sum(len(n) + len(v) + 4 for n, v in self.headers) + 2 + len(self.body)

    def raw_bytes(self, headers: list[tuple[str, str]] | None = None) -> bytes:
        if headers is None and self.context is not None:
            return self.context.raw_bytes()
        hs = self.headers if headers is None else headers
        head = b"".join(n.encode("utf-8", "surrogateescape") + b": "
                        + v.encode("utf-8", "surrogateescape").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                        + b"\r\n" for n, v in hs)
        return head + b"\r\n" + self.body_bytes()

    def parsed(self) -> Message:
        if self._parsed is None:
            if self.context is not None:
                self._parsed = self.context.message
            else:
                try:
                    self._parsed = email.message_from_bytes(self.raw_bytes(), policy=email.policy.compat32)
                except Exception:  # noqa: BLE001 - the stdlib parser crashes on some hostile headers
                    msg = email.message.Message()
                    msg.set_payload(self.body_bytes())
                    self._parsed = msg
        return self._parsed


def decode_header_value(value: str) -> str:
    """Unfold and decode RFC 2047 encoded words (RFC 5228 section 2.7.2); never raises. Raw
    8-bit bytes are read as UTF-8 (RFC 6532), or as Latin-1 where they are not UTF-8
    (:func:`.mime.headers.decode_words`): kept as the milter's surrogate escapes, a test
    could not match them and a script that copied such a Subject into ``addheader`` failed at
    run time (tempfail, on every retry of the message)."""
    if "\n" in value:
        value = value.replace("\r\n", "").replace("\n", "")
    return decode_words(value.strip(" \t"))


# -- the run ------------------------------------------------------------------------------------
_ASCII_LOWER = {i: i + 32 for i in range(65, 91)}


class Runtime:
    """Per execution state. One Runtime per message (and per recipient for RCPT rules)."""

    __slots__ = (
        "_acache",
        "_fcache",
        "_hcache",
        "_raw_index",
        "actions",
        "deadline",
        "edits",
        "env",
        "flags",
        "globals",
        "headers",
        "hooks",
        "implicit_keep",
        "include_depth",
        "included_once",
        "limits",
        "line",
        "loops",
        "match",
        "msg",
        "now",
        "part_stack",
        "rcpt",
        "redirects",
        "script",
        "vars",
        "warnings",
    )

    def __init__(self, msg: MessageData, env: Environment | None = None, limits: Limits = DEFAULT_LIMITS,
                 *, now: datetime | None = None, hooks: Any = None) -> None:
        self.msg = msg
        self.env: Environment = env or BasicEnvironment()
        self.limits = limits
        self.hooks = hooks  # host object for vnd.bulwark tests (gateway context)
        self.headers: list[tuple[str, str]] = msg.headers  # replaced by a copy on the first edit
        self._hcache: dict[str, list[str]] = {}
        self._fcache: dict[str, list[str]] = {}  # header values folded by i;ascii-casemap
        self._acache: dict[str, list[str]] = {}  # addresses per header
        self._raw_index: dict[str, list[str]] | None = None
        self.vars: dict[str, str] = {}
        self.globals: dict[str, str] = {}
        self.match: list[str] = []
        self.flags: list[str] = []
        self.actions: list[SieveAction] = []
        self.implicit_keep = True
        self.redirects = 0
        self.edits = 0
        self.line = 0
        self.script = ""
        self.deadline = time.perf_counter() + limits.cpu_seconds
        self.now = now
        self.included_once: set[str] = set()
        self.include_depth = 0
        self.part_stack: list[Message] = []  # foreverypart (RFC 5703)
        self.loops = 0
        self.rcpt: Any = None
        self.warnings: list[str] = []  # run-time problems that do not stop the script

    # -- headers --------------------------------------------------------------------------------
    def header_values(self, name: str) -> list[str]:
        key = name.lower()
        vals = self._hcache.get(key)
        if vals is None:
            idx = self._raw_index
            if idx is None:
                # One pass over the header list indexes every name (decoded lazily below).
                idx = {}
                for n, v in self.headers:
                    idx.setdefault(n.lower(), []).append(v)
                self._raw_index = idx
            raw = idx.get(key)
            vals = [decode_header_value(v) for v in raw] if raw else []
            self._hcache[key] = vals
        return vals

    def header_folded(self, key: str) -> list[str]:
        """Values of a header (lower-case name) folded by i;ascii-casemap, cached per message."""
        vals = self._fcache.get(key)
        if vals is None:
            vals = [v.lower() if v.isascii() else v.translate(_ASCII_LOWER) for v in self.header_values(key)]
            self._fcache[key] = vals
        return vals

    def invalidate(self) -> None:
        """The header list changed: drop every derived view of it."""
        self._hcache.clear()
        self._fcache.clear()
        self._acache.clear()
        self._raw_index = None

    def addresses(self, name: str) -> list[str]:
        """Addresses in a header (all occurrences), parsed once per message state."""
        key = name.lower()
        vals = self._acache.get(key)
        if vals is None:
            from gateway_milter.sieve.language import parse_addresses

            vals = []
            for v in self.header_values(name):
                vals.extend(parse_addresses(v))
            self._acache[key] = vals
        return vals

    def message_size(self) -> int:
        if self.headers is self.msg.headers:
            return self.msg.size
        return sum(len(n) + len(v) + 4 for n, v in self.headers) + 2 + len(self.msg.body_bytes())

    def edit_headers(self) -> list[tuple[str, str]]:
        # Copy on every edit: actions already taken keep the message as it was then.
        self.headers = list(self.headers)
        self.invalidate()
        return self.headers

    def check_time(self) -> None:
        if time.perf_counter() > self.deadline:
            raise SieveRuntimeError("CPU time limit exceeded", self.line, self.script)

    # -- result ---------------------------------------------------------------------------------
    def add_action(self, action: SieveAction, cancels_keep: bool = True) -> None:
        action.script = self.script
        kind = action.kind
        if kind in DELIVERING:
            action.headers = self.headers
        for other in self.actions:
            ok = other.kind
            if kind in ("reject", "ereject") and (ok in DELIVERING or ok in ("reject", "ereject")):
                raise SieveRuntimeError(f"{kind} action conflicts with other action: {ok}", action.line, self.script)
            if ok in ("reject", "ereject") and kind in DELIVERING:
                raise SieveRuntimeError(f"{kind} action conflicts with earlier {ok} action", action.line, self.script)
        # Merge duplicates (RFC 5228 2.10.3): one delivery per mailbox / address.
        for other in self.actions:
            if _same_delivery(other, action):
                if "flags" in action.args and action.args.get("flags") is not None:
                    other.args["flags"] = action.args["flags"]
                if not action.args.get("copy", False) and other.args.get("copy"):
                    other.args["copy"] = False
                if cancels_keep:
                    self.implicit_keep = False
                return
        if kind == "redirect":
            self.redirects += 1
            if self.redirects > self.limits.max_redirects:
                raise SieveRuntimeError(f"too many redirect actions (limit {self.limits.max_redirects})",
                                        action.line, self.script)
        if len(self.actions) >= self.limits.max_actions:
            raise SieveRuntimeError(f"too many actions (limit {self.limits.max_actions})", action.line, self.script)
        self.actions.append(action)
        if cancels_keep:
            self.implicit_keep = False

    def result(self) -> list[SieveAction]:
        return self.actions


def _same_delivery(a: SieveAction, b: SieveAction) -> bool:
    ka, kb = a.kind, b.kind
    if ka in ("keep", "fileinto") and kb in ("keep", "fileinto"):
        return _mailbox(a) == _mailbox(b)
    if ka == kb == "redirect":
        return bool(a.args["address"].lower() == b.args["address"].lower())
    return ka == kb and ka in ("discard",)


def _mailbox(a: SieveAction) -> str:
    mb = a.args.get("mailbox", "INBOX") if a.kind == "fileinto" else "INBOX"
    return "INBOX" if mb.upper() == "INBOX" else mb


HookFn = Callable[[Runtime], Any]
