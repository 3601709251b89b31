"""The shared MIME view (first version: stdlib parse; the ambiguity-aware parser extends it).

API contract other layers rely on (keep it stable):
- ``parse_message(raw: bytes) -> MimeView`` never raises on malformed input;
- ``MimeView.parts``: every leaf part, depth-first, as :class:`MimePart`;
- ``MimePart.content_type`` (lower-case ``type/subtype``), ``filename`` (decoded, may be ""),
  ``payload`` (decoded bytes), ``text`` (decoded ``str`` for text/* parts, else None),
  ``is_attachment``, ``depth``, ``index``;
- ``MimeView.defects``: list of strings naming parse problems;
- ``MimeView.text`` (all text/plain parts joined) and ``MimeView.html`` (all text/html joined).
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import Message


@dataclass(slots=True)
class MimePart:
    index: int
    depth: int
    content_type: str
    filename: str
    payload: bytes
    text: str | None
    is_attachment: bool
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class MimeView:
    message: Message
    parts: list[MimePart]
    defects: list[str]

    @property
    def text(self) -> str:
        return "\n".join(p.text or "" for p in self.parts if p.content_type == "text/plain" and not p.is_attachment)

    @property
    def html(self) -> str:
        return "\n".join(p.text or "" for p in self.parts if p.content_type == "text/html" and not p.is_attachment)


def parse_message(raw: bytes) -> MimeView:
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    parts: list[MimePart] = []
    defects = [type(d).__name__ for d in msg.defects]

    def walk(m: Message, depth: int) -> None:
        if m.is_multipart():
            for sub in m.get_payload() or []:
                if isinstance(sub, Message):
                    defects.extend(type(d).__name__ for d in sub.defects)
                    walk(sub, depth + 1)
            return
        ctype = m.get_content_type()
        try:
            payload = m.get_payload(decode=True) or b""
        except Exception:  # noqa: BLE001 - malformed encodings give raw bytes
            payload = str(m.get_payload()).encode("utf-8", "surrogateescape")
        text = None
        if ctype.startswith("text/"):
            charset = m.get_content_charset() or "utf-8"
            try:
                text = payload.decode(charset, "replace")
            except LookupError:
                text = payload.decode("utf-8", "replace")
        try:
            filename = m.get_filename() or ""
        except Exception:  # noqa: BLE001
            filename = ""
        disp = (m.get("Content-Disposition") or "").split(";")[0].strip().lower()
        parts.append(MimePart(len(parts), depth, ctype, str(filename), payload, text,
                              disp == "attachment" or bool(filename), list(m.items())))

    walk(msg, 0)
    return MimeView(msg, parts, defects)
