"""Per-connection and per-message state.

libmilter runs one connection's callbacks on different worker threads, so nothing here may
live in thread-locals: the milter object owns one :class:`ConnectionInfo` for the whole SMTP
connection and a fresh :class:`MessageContext` for each transaction (MAIL FROM .. end of
message). Layer objects are process-wide and stateless; everything a layer learns about a
message goes into the context.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import functools
import ipaddress
import re
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway_milter.verdict import Direction, HeaderEdit, Outcome, Symbol, TraceEntry

if TYPE_CHECKING:
    from gateway_milter.mime.view import MimeView
    from gateway_milter.pipeline.runner import LayerResult, LayerRunner
    from gateway_milter.policy.snapshot import PolicySnapshot

# Messages up to this size stay in memory; larger ones spill to a temporary file.
SPOOL_MEMORY_LIMIT = 4 * 1024 * 1024
TRANSCRIPT_LIMIT = 200


@dataclass
class ConnectionInfo:
    """Facts about the SMTP client, fixed for the whole connection."""

    client_ip: str | None = None
    client_port: int | None = None
    client_name: str = ""  # the MTA's verified reverse name, "unknown" when it has none
    helo: str = ""
    macros: dict[str, str] = field(default_factory=dict)
    connected_at: float = field(default_factory=time.time)
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    @functools.cached_property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if not self.client_ip:
            return None
        try:
            addr = ipaddress.ip_address(self.client_ip.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            return addr.ipv4_mapped
        return addr

    @property
    def verified_name(self) -> str:
        """The client's forward-confirmed reverse name, or "". Postfix gives the milter its
        verified ``client_name`` ("unknown" without one); Sendmail gives the PTR name and says
        in ``{client_resolve}`` whether it was confirmed (OK, FAIL, FORGED, TEMP)."""
        name = self.client_name.strip().rstrip(".").lower()
        if not name or name == "unknown" or name.startswith("[") or "." not in name:
            return ""
        resolve = self.macros.get("{client_resolve}")
        if resolve is not None and resolve.upper() != "OK":
            return ""
        return name

    @property
    def auth_user(self) -> str:
        """SASL login name (Postfix macro ``{auth_authen}``), empty when not authenticated."""
        return self.macros.get("{auth_authen}", "")

    @property
    def daemon_name(self) -> str:
        return self.macros.get("{daemon_name}", "")


class BodySpool:
    """Message bytes kept in memory up to a bound, then in an anonymous temporary file."""

    def __init__(self, memory_limit: int = SPOOL_MEMORY_LIMIT) -> None:
        self._spool = tempfile.SpooledTemporaryFile(max_size=memory_limit)  # noqa: SIM115
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._spool.write(chunk)
        self.size += len(chunk)

    def getvalue(self) -> bytes:
        self._spool.seek(0)
        data = self._spool.read()
        self._spool.seek(0, 2)
        return data

    def close(self) -> None:
        self._spool.close()


# BATV tags (prvs=, msprvs1=, Barracuda's btv1==TAG==): the sending site's bounce protection, a
# new tag for every message on the address its user has
_BATV = re.compile(r"(?i)^(?:(?:prvs|msprvs\d?|btv1)=[^=@]+=|btv1==[^=@]+==)(?=[^@]+@)")


# the older order some signers write, prvs=user=TAG@ (TAG: a key digit, three day digits, six
# hex digits), as Postgrey reads it too; a first field of that form is a tag (the draft's order)
_BATV_OLD = re.compile(r"(?i)^prvs=([^=@]+)=[0-9]{4}[0-9a-f]{6}(?=@)")
_BATV_TAG = re.compile(r"(?i)[0-9]{4}[0-9a-f]{6}")


def untag(address: str) -> str:
    """The address without a BATV tag in front (draft-levine-smtp-batv's prvs=, msprvs1=,
    Barracuda's btv1==TAG==, and the older prvs=user=TAG@); unchanged without one. The lists
    and greylisting's triplets compare senders so."""
    old = _BATV_OLD.match(address)
    if old is not None and not _BATV_TAG.fullmatch(old.group(1)):
        return old.group(1) + address[old.end():]
    return _BATV.sub("", address, count=1)


@dataclass(slots=True)
class Recipient:
    address: str
    domain: str
    is_local: bool
    esmtp: tuple[str, ...] = ()
    outcome: Outcome | None = None  # decided at RCPT (reject/tempfail never reach here)
    direction: Direction = Direction.INBOUND

    @property
    def plain(self) -> str:
        """The address without a BATV tag (``prvs=TAG=bob@`` is delivered to ``bob@``): what the
        lists, greylisting, spam traps, Bayes' user scope and Sieve judge the recipient by (a
        tag, which anyone can write, passes none of them by)."""
        return untag(self.address)


def split_address(address: str) -> tuple[str, str]:
    """``'<Bob@Example.COM>'`` -> ``('Bob', 'example.com')``; domain is lower-cased."""
    a = address.strip().strip("<>").strip()
    if "@" not in a:
        return a, ""
    local, _, domain = a.rpartition("@")
    return local, domain.lower().rstrip(".")


class MessageContext:
    """Everything known about one message; created at MAIL FROM (or by the scan CLI)."""

    def __init__(self, conn: ConnectionInfo, policy: PolicySnapshot, *, scan_mode: bool = False):
        self.conn = conn
        self.policy = policy
        self.scan_mode = scan_mode  # offline scan: no greylisting, no side effects
        # scan mode that still judges greylisting (manage.py scan --greylist): read-only, like
        # everything else in scan mode
        self.greylist_in_scan = False
        self.log_id = uuid.uuid4().hex
        self.started = time.time()
        self.mail_from = ""
        # a stored message scanned without its envelope: mail_from was read off its headers
        # (the rules then guess EnvelopeFrom as SpamAssassin does)
        self.envelope_guessed = False
        self.mail_esmtp: tuple[str, ...] = ()
        self.recipients: list[Recipient] = []
        self.rejected_recipients: list[tuple[str, str]] = []  # (address, reply) refused at RCPT
        self.headers: list[tuple[str, str]] = []
        # per header, what stood between its colon and its value: " " (one space, which
        # Sendmail and Postfix take off a value unless the milter asks for it) or "" (none:
        # ``Subject:x``, ``Date:<TAB>...``); the message is written back with it (raw_bytes),
        # as DKIM's simple canonicalization and the rules' ``:raw`` read it
        self.header_gaps: list[str] = []
        self.body = BodySpool()
        self.queue_id = ""
        self.direction = Direction.INBOUND
        self.policy_domain: str | None = None
        self.symbols: list[Symbol] = []
        # the symbols found for one recipient (RCPT stage): id(symbol) -> its plain address, lower case
        self.recipient_symbols: dict[int, str] = {}
        self.facts: dict[str, Any] = {}
        self.trace: list[TraceEntry] = []
        self.transcript: list[str] = []
        self.runner: LayerRunner | None = None
        self.outcome: Outcome | None = None
        self.quarantined: list[dict[str, Any]] = []  # metadata of stored quarantine copies
        self.abandoned = False  # the front answered 4xx after a budget overrun
        # a milter transaction (Gateway.begin), which ends with an answer (Gateway.finish):
        # autolearn's (store, LearnItem) waits for it in autolearn_pending
        self.in_transaction = False
        self.autolearn_pending: tuple[Any, Any] | None = None
        # the message as received, kept once transforms change the delivered view
        self._received: tuple[list[tuple[str, str]], list[str], BodySpool] | None = None
        self.header_size = 0
        self._raw: bytes | None = None
        self._mime: MimeView | None = None

    # -- collection ---------------------------------------------------------------------------
    def add_header(self, name: str, value: str, gap: str = " ") -> None:
        """A header as the MTA passes it by default: its value without the one space after the
        colon (``gap`` says whether there was one; unknown, the space is assumed)."""
        self.headers.append((name, value))
        self.header_gaps.append(gap)
        self.header_size += len(name) + len(value) + 3 + len(gap)
        self._raw = None

    def add_raw_header(self, name: str, text: str) -> None:
        """A header from all that follows its colon, leading white space included (what the MTA
        passes once the milter asked for SMFIP_HDR_LEADSPC, and what a message file holds)."""
        if text.startswith(" "):
            self.add_header(name, text[1:])
        else:
            self.add_header(name, text, "")

    def note(self, line: str) -> None:
        """Append a line to the SMTP transcript (bounded)."""
        if len(self.transcript) < TRANSCRIPT_LIMIT:
            self.transcript.append(line[:500])
        elif len(self.transcript) == TRANSCRIPT_LIMIT:
            self.transcript.append("... transcript truncated")

    def add_trace(self, source: str, event: str, detail: str = "", ms: float = 0.0) -> None:
        self.trace.append(TraceEntry(source, event, detail, round(ms, 3)))

    # -- derived views ------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self.header_size + 2 + self.body.size

    @property
    def sender_domain(self) -> str:
        return split_address(self.mail_from)[1]

    @functools.cached_property
    def is_internal_sender(self) -> bool:
        """Authenticated, or connected from a trusted network (fixed from MAIL FROM on)."""
        if self.conn.auth_user:
            return True
        return self.policy.is_trusted_ip(self.conn.ip)

    def header(self, name: str) -> str | None:
        """First value of a header, or None."""
        lname = name.lower()
        for n, v in self.headers:
            if n.lower() == lname:
                return v
        return None

    def header_values(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    def raw_bytes(self) -> bytes:
        """The message as it stands: as received, or as it will be delivered once transforms
        changed it (``received_bytes`` keeps the original)."""
        if self._raw is None:
            self._raw = _message_bytes(self.headers, self.header_gaps, self.body)
        return self._raw

    @property
    def message(self) -> email.message.Message:
        """The parsed message (stdlib, compat32): the one the shared MIME view parsed, so the
        message is parsed once whoever asks first; never raises on malformed input."""
        return self.mime.message

    @property
    def mime(self) -> MimeView:
        """The one MIME view every layer shares (parsed once, lazily)."""
        if self._mime is None:
            from gateway_milter.mime.view import parse_message

            self._mime = parse_message(self.raw_bytes())
        return self._mime

    # -- layers -------------------------------------------------------------------------------
    def layer(self, layer_id: str) -> LayerResult:
        """The layer's result, computed at most once per message (lazily)."""
        assert self.runner is not None, "no layer runner attached"
        return self.runner.result(self, layer_id)

    def has_symbol(self, name: str) -> bool:
        return any(s.name == name for s in self.symbols)

    @property
    def score(self) -> float:
        """The message's spam score: the scoring layer's total once it has run (the score the
        thresholds were judged by, with the fitted score set and the Bayes cap, 0 for exempt
        mail), before that the sum of the symbols found so far."""
        runner = self.runner
        if runner is not None:
            scored = runner.peek("scoring")
            if scored is not None and not scored.error and not scored.skipped and "score" in scored.facts:
                return round(float(scored.facts["score"]), 3)
        return round(sum(s.score for s in self.symbols), 3)

    def apply_delivery_changes(self, edits: list[HeaderEdit], new_body: bytes | None) -> None:
        """Make the context show the message as it will be delivered, so that later transforms
        (DKIM signing runs last) see earlier header edits and body replacements."""
        if self._received is None:
            self._received = (list(self.headers), list(self.header_gaps), self.body)
        # (the front writes each added or changed value with one space after the colon)
        for e in edits:
            if e.op == "add":
                self.headers.append((e.name, e.value))
                self.header_gaps.append(" ")
            elif e.op == "insert":
                self.headers.insert(0, (e.name, e.value))
                self.header_gaps.insert(0, " ")
            else:
                positions = [i for i, (n, _) in enumerate(self.headers) if n.lower() == e.name.lower()]
                if e.index <= len(positions):
                    at = positions[e.index - 1]
                    if e.op == "change":
                        self.headers[at] = (self.headers[at][0], e.value)
                        self.header_gaps[at] = " "
                    else:
                        del self.headers[at]
                        del self.header_gaps[at]
        if new_body is not None:
            if self.body is not self._received[2]:
                self.body.close()
            self.body = BodySpool()
            self.body.write(new_body)
        self._raw = None
        self._mime = None

    def received_bytes(self) -> bytes:
        """The message exactly as received, even after transforms changed the delivered view."""
        if self._received is None:
            return self.raw_bytes()
        headers, gaps, body = self._received
        return _message_bytes(headers, gaps, body)

    def close(self) -> None:
        if self._received is not None and self._received[2] is not self.body:
            self._received[2].close()
        self.body.close()


def _message_bytes(headers: list[tuple[str, str]], gaps: list[str], body: BodySpool) -> bytes:
    # (a header set without add_header, as some tests build one, has the usual space)
    gaps = gaps[:len(headers)] + [" "] * (len(headers) - len(gaps))
    head = b"".join(
        n.encode("utf-8", "surrogateescape") + b":" + gap.encode() + _header_bytes(v) + b"\r\n"
        for (n, v), gap in zip(headers, gaps, strict=True)
    )
    return head + b"\r\n" + body.getvalue()


def _header_bytes(value: str) -> bytes:
    # pymilter hands header values as str decoded with surrogateescape for 8-bit bytes;
    # folded lines arrive with bare LF or CRLF, and we re-emit them as CRLF.
    b = value.encode("utf-8", "surrogateescape")
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
