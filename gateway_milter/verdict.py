"""Value types shared by layers, the policy and the milter front.

Layers report facts and scored symbols (:class:`Symbol`); the policy turns them into an
:class:`Outcome`. Everything here is small, immutable and free of I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Action(str, enum.Enum):
    """The final answer for a message or one recipient of it."""

    ACCEPT = "accept"
    REJECT = "reject"
    TEMPFAIL = "tempfail"
    DISCARD = "discard"
    QUARANTINE = "quarantine"


class QuarantineQueue(str, enum.Enum):
    """User quarantine (recipients may see and release) or admin quarantine (global admins)."""

    USER = "user"
    ADMIN = "admin"


class Stage(str, enum.Enum):
    """SMTP stage at which a layer can run (the earliest it has its inputs)."""

    CONNECT = "connect"
    HELO = "helo"
    MAIL = "mail"
    RCPT = "rcpt"
    EOM = "eom"


class FailMode(str, enum.Enum):
    """What a layer's internal failure (exception, time-out) means for the message.

    ``UNKNOWN``: the layer reports nothing (DNS-based layers).
    ``TEMPFAIL``: the message is answered 4xx (antivirus, MIME parsing, storage).
    """

    UNKNOWN = "unknown"
    TEMPFAIL = "tempfail"


class Direction(str, enum.Enum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    LOCAL = "local"
    RELAY = "relay"  # external sender to an external recipient: refused by relay control


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP reply: basic code, enhanced status code (RFC 3463) and text."""

    code: str
    enhanced: str
    text: str

    def __post_init__(self) -> None:
        if len(self.code) != 3 or not self.code.isdigit() or self.code[0] not in "45":
            raise ValueError(f"SMTP reply code must be 4xx or 5xx, got {self.code!r}")
        parts = self.enhanced.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts) or parts[0] != self.code[0]:
            raise ValueError(f"enhanced status {self.enhanced!r} does not fit code {self.code}")
        if any(c in self.text for c in "\r\n\0"):
            raise ValueError("SMTP reply text must be one line")

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


REPLY_TEXT_MAX = 400  # characters: an SMTP reply line is at most 512 octets (RFC 5321 4.5.3.1.5)


def smtp_reply_text(text: str, default: str = "") -> str:
    """*text* as an SMTP reply can carry it: one line of printable ASCII (RFC 5321 4.2; no
    SMTPUTF8 replies), white space runs as one space, at most ``REPLY_TEXT_MAX`` characters.
    libmilter refuses a longer reply (over 980 bytes) or a line break, and a refused reply
    would turn a refusal into a 451 on every try."""
    out = "".join(c if " " <= c <= "~" else "?" for c in " ".join(text.split()))
    return out[:REPLY_TEXT_MAX].rstrip() or default


DEFAULT_REJECT = Reply("550", "5.7.1", "Message rejected by policy")
DEFAULT_TEMPFAIL = Reply("451", "4.7.1", "Temporary failure, please try again later")


@dataclass(frozen=True, slots=True)
class Symbol:
    """A named, scored observation made by a layer (``SPF_FAIL``, ``BLOCKLIST_SENDER``)."""

    name: str
    score: float = 0.0
    detail: str = ""
    layer: str = ""


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One line of "why this decision": which layer or script computed or decided what."""

    source: str
    event: str
    detail: str = ""
    ms: float = 0.0


@dataclass(frozen=True, slots=True)
class HeaderEdit:
    """``add`` appends a header, ``insert`` prepends it, ``delete`` removes the index-th
    occurrence (1-based), ``change`` gives the index-th occurrence ``value`` where it stands.
    To remove every occurrence, emit one delete per index, the last first: libmilter's
    change-header call removes one occurrence, so there is no "all"."""

    op: str
    name: str
    value: str = ""
    index: int = 0

    def __post_init__(self) -> None:
        if self.op not in ("add", "insert", "delete", "change"):
            raise ValueError(f"unknown header edit {self.op!r}")
        if not self.name or any(c in self.name for c in ": \t\r\n\0"):
            raise ValueError(f"invalid header name {self.name!r}")
        if self.op in ("delete", "change") and self.index < 1:
            raise ValueError(f"a header {self.op} names its occurrence (1-based), not {self.index}")


def delete_all(name: str, count: int) -> list[HeaderEdit]:
    """Deletes of every one of ``count`` occurrences of ``name``, the last first, so that the
    earlier indexes still point at the same headers (a delete removes one occurrence)."""
    return [HeaderEdit("delete", name, index=i) for i in range(count, 0, -1)]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The policy's decision for a message (or one recipient).

    ``reply`` is used for reject and tempfail; ``queue`` for quarantine. ``header_edits``,
    ``add_recipients`` and ``body_transforms`` apply when the message is delivered.
    """

    action: Action
    reply: Reply | None = None
    queue: QuarantineQueue | None = None
    reason: str = ""
    decided_by: str = ""
    header_edits: tuple[HeaderEdit, ...] = ()
    add_recipients: tuple[str, ...] = ()
    body_transforms: tuple[str, ...] = field(default=())
    # the original recipients do not get the message (Sieve redirect without :copy)
    drop_recipients: bool = False

    @staticmethod
    def accept(reason: str = "", decided_by: str = "", **kw: object) -> Outcome:
        return Outcome(Action.ACCEPT, reason=reason, decided_by=decided_by, **kw)  # type: ignore[arg-type]

    @staticmethod
    def reject(reply: Reply = DEFAULT_REJECT, reason: str = "", decided_by: str = "") -> Outcome:
        return Outcome(Action.REJECT, reply=reply, reason=reason or reply.text, decided_by=decided_by)

    @staticmethod
    def tempfail(reply: Reply = DEFAULT_TEMPFAIL, reason: str = "", decided_by: str = "") -> Outcome:
        return Outcome(Action.TEMPFAIL, reply=reply, reason=reason or reply.text, decided_by=decided_by)

    @staticmethod
    def discard(reason: str = "", decided_by: str = "") -> Outcome:
        return Outcome(Action.DISCARD, reason=reason, decided_by=decided_by)

    @staticmethod
    def quarantine(
        queue: QuarantineQueue = QuarantineQueue.USER, reason: str = "", decided_by: str = ""
    ) -> Outcome:
        return Outcome(Action.QUARANTINE, queue=queue, reason=reason, decided_by=decided_by)

    @property
    def is_final_refusal(self) -> bool:
        return self.action in (Action.REJECT, Action.TEMPFAIL)
