"""Strip-and-deliver: blocked attachments are replaced by a text/plain notice part (RFC 2046),
the rest of the message is delivered, and the original is kept in the admin quarantine.

Runs when the attachments layer's action is ``strip`` (and the layer acts, not score-only), or
when a policy script asked for it (``strip_attachments`` in the outcome's body transforms).
The quarantine copy is stored durably *before* the new body is returned, so nothing is lost if
storing fails (the exception tempfails the message).
"""

from __future__ import annotations

import email
import email.policy
import io
from email.charset import QP, Charset
from email.generator import BytesGenerator
from email.message import Message
from email.mime.text import MIMEText
from typing import TYPE_CHECKING, Any

from gateway_milter.mime.headers import safe_filename
from gateway_milter.transforms import TransformResult, TransformServices
from gateway_milter.verdict import Action, HeaderEdit, QuarantineQueue, delete_all

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext
    from gateway_milter.verdict import Outcome

NOTICE = (
    "The attachment {name} ({ctype}) was removed by the mail gateway: {reason}.\r\n"
    "The original message is held by the mail administrators under reference {qid}.\r\n"
)


def _findings(ctx: MessageContext, outcome: Outcome) -> list[dict[str, Any]]:
    if ctx.runner is None:
        return []
    settings = ctx.policy.settings_for("attachments", ctx.policy_domain)
    wanted = "strip_attachments" in outcome.body_transforms
    if not wanted and not (settings.acts and getattr(settings, "action", "") == "strip"):
        return []
    res = ctx.layer("attachments")
    if res.error or res.skipped:
        return []
    # parts only another MIME reading shows are not in the tree: the attachments layer holds
    # such messages (ATTACHMENT_BLOCKED_HIDDEN) instead
    return [f for f in res.facts.get("findings", []) if f.get("blocked") and not f.get("hidden")]


def strip_attachments(ctx: MessageContext, outcome: Outcome, services: TransformServices) -> TransformResult | None:
    if outcome.action is not Action.ACCEPT:
        return None
    findings = _findings(ctx, outcome)
    if not findings:
        return None
    reason = "attachment stripped: " + "; ".join(f"{f['name'] or f['part']}" for f in findings)[:300]
    qid = services.quarantine_copy(ctx, QuarantineQueue.ADMIN, reason)
    ctx.facts["stripped"] = [f["part"] for f in findings]
    return strip_parts(ctx.raw_bytes(), findings, qid)


def _notice(finding: dict[str, Any], qid: str) -> MIMEText:
    why = finding["reasons"][0] if finding.get("reasons") else "not allowed by policy"
    name = safe_filename(finding.get("name") or "") or "(unnamed)"
    text = NOTICE.format(name=f'"{name}"', ctype=finding.get("detected") or finding.get("declared"),
                         reason=why.split(": ", 1)[-1], qid=qid)
    cs = Charset("utf-8")
    cs.body_encoding = QP  # readable in any client, and in logs
    part = MIMEText(text, "plain", cs)  # type: ignore[arg-type]
    del part["MIME-Version"]
    part["Content-Disposition"] = "inline"
    return part


def _locate(msg: Message, path: tuple[int, ...]) -> tuple[Message | None, int]:
    """(parent, index) of the part at ``path`` (parent None for the top-level part)."""
    if not path:
        return None, -1
    node = msg
    for i in path[:-1]:
        payload = node.get_payload()
        child = payload[i] if isinstance(payload, list) and i < len(payload) else None
        if not isinstance(child, Message):
            raise LookupError(f"part {path} not found")
        node = child
    payload = node.get_payload()
    if not isinstance(payload, list) or path[-1] >= len(payload):
        raise LookupError(f"part {path} not found")
    return node, path[-1]


def strip_parts(raw: bytes, findings: list[dict[str, Any]], qid: str) -> TransformResult:
    """The new body (and header edits when the top-level part itself is stripped)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    edits: list[HeaderEdit] = []
    paths = [tuple(int(x) - 1 for x in f["part"].split(".")) if f["part"] != "0" else () for f in findings]
    for path, finding in zip(paths, findings, strict=False):
        notice = _notice(finding, qid)
        parent, idx = _locate(msg, path)
        if parent is None:
            # the whole message is the attachment: it becomes the notice
            for name in ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition"):
                # one delete per copy, the last first: a milter header change removes one
                # occurrence, and a second copy would stand in front of the notice's own
                edits += delete_all(name, len(msg.get_all(name) or []))
            edits.append(HeaderEdit("add", "Content-Type", 'text/plain; charset="utf-8"'))
            edits.append(HeaderEdit("add", "Content-Transfer-Encoding", str(notice["Content-Transfer-Encoding"])))
            return TransformResult(edits, _crlf(str(notice.get_payload()).encode("ascii")))
        children = parent.get_payload()
        assert isinstance(children, list)
        children[idx] = notice
    buf = io.BytesIO()
    BytesGenerator(buf, mangle_from_=False, maxheaderlen=0).flatten(msg, linesep="\r\n")
    out = buf.getvalue()
    sep = out.find(b"\r\n\r\n")
    body = out[sep + 4:] if sep >= 0 else b""
    edits.append(HeaderEdit("add", "X-Bulwark-Stripped", f"{len(findings)} attachment(s); ref {qid}"))
    return TransformResult(edits, body)


def _crlf(b: bytes) -> bytes:
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
