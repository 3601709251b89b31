"""Safe views of a stored message (RFC 5322 / MIME, RFC 2045): headers, plain text, a
sanitised HTML preview and the attachment list.

Nothing of the message is trusted: the HTML is cleaned with bleach down to a small set of
formatting tags (no scripts, styles, forms, frames, event handlers or images), links lose
everything but http/https/mailto, and the result is served in a sandboxed iframe under a
Content-Security-Policy that forbids every remote load, so remote content stays blocked even
if a tag slipped through. Everything else is shown through Django's autoescaping.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import Message

import bleach

from gateway_milter.mime.headers import bytes_as_text, content_charset, filename_candidates

MAX_PART = 2_000_000
ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "div", "dl", "dt", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "s", "small", "span", "strong", "sub", "sup", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "u", "ul", "font", "center",
})
ALLOWED_ATTRS = {"a": ["href", "title"], "td": ["colspan", "rowspan", "align"], "th": ["colspan", "rowspan", "align"],
                 "*": ["align"], "font": ["color"]}  # no style attributes: CSS can load remote content
PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


@dataclass
class MessageView:
    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str = ""
    html: str = ""  # sanitised
    attachments: list[dict[str, object]] = field(default_factory=list)
    error: str = ""
    blocked_images: int = 0


def sanitize_html(raw: str) -> tuple[str, int]:
    blocked = raw.lower().count("<img")
    clean = bleach.clean(raw, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRS, protocols=["http", "https", "mailto"],
                         strip=True, strip_comments=True)
    return clean, blocked


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True) or b""
    return bytes_as_text(payload[:MAX_PART], content_charset(part, "utf-8"))


def _raw_filename(part: Message) -> str:
    """A part's file name from its raw header fields (``raw_items`` does not parse them)."""
    raw = [(str(k).lower(), str(v)) for k, v in part.raw_items()]
    names = filename_candidates([v for k, v in raw if k == "content-disposition"],
                                [v for k, v in raw if k == "content-type"])
    return names[0] if names else "(unreadable name)"


def _raw_payload(part: Message) -> bytes | str:
    payload = part.get_payload()
    return payload if isinstance(payload, (bytes, str)) else b""


def view_message(raw: bytes) -> MessageView:
    out = MessageView()
    msg: Message
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception:  # noqa: BLE001 - the default policy parses structured headers as it reads:
        # a Content-Type it cannot read (an idna charset parameter) stops it; the compat32
        # policy keeps header values as text
        try:
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        except Exception as e:  # noqa: BLE001 - a broken message is shown as such, never a 500
            out.error = f"cannot parse the message: {e}"
            return out
    for k, v in msg.items():
        try:
            out.headers.append((str(k), str(v)))
        except Exception:  # noqa: BLE001
            out.headers.append((str(k), "(undecodable)"))
    try:
        for part in msg.walk():
            if part.is_multipart():
                continue
            try:
                disp = part.get_content_disposition()
                ctype = part.get_content_type()
                fname = part.get_filename()
            except Exception:  # noqa: BLE001 - the standard library cannot read this part's headers
                # (an RFC 2231 section number of 4,300+ digits, an idna charset): listed as an
                # attachment named as the MIME view reads names, and the other parts still shown
                out.attachments.append({"filename": _raw_filename(part), "type": "(unreadable)",
                                        "size": len(_raw_payload(part))})
                continue
            if disp == "attachment" or fname:
                out.attachments.append({"filename": fname or "(no name)", "type": ctype,
                                        "size": len(part.get_payload(decode=True) or b"")})
                continue
            if ctype == "text/plain" and not out.text:
                out.text = _text_of(part)
            elif ctype == "text/html" and not out.html:
                out.html, out.blocked_images = sanitize_html(_text_of(part))
    except Exception as e:  # noqa: BLE001
        out.error = f"cannot read the message body: {e}"
    return out
