"""Strip-and-deliver: the blocked part is replaced by a notice, the rest is kept, and the
original goes to the admin quarantine first."""

from __future__ import annotations

import email
import email.policy

import pytest

from gateway_milter.context import MessageContext
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.transforms.strip import strip_attachments
from gateway_milter.verdict import Outcome, QuarantineQueue
from tests.unit.av.mailbuild import HEAD, b64, context, with_attachment
from tests.unit.av.test_archives import EXE


class FakeServices:
    def __init__(self, fail: bool = False) -> None:
        self.copies: list[tuple[bytes, QuarantineQueue, str]] = []
        self.fail = fail

    def quarantine_copy(self, ctx: MessageContext, queue: QuarantineQueue, reason: str,
                        recipients: list[str] | None = None) -> str:
        if self.fail:
            raise OSError("quarantine store is down")
        self.copies.append((ctx.raw_bytes(), queue, reason))
        return "Q-0001"


STRIP = PolicySnapshot.from_document({"settings": {"attachments": {"action": "strip"}}})


def rebuilt(ctx: MessageContext, body: bytes) -> email.message.Message:
    head = ctx.raw_bytes().split(b"\r\n\r\n", 1)[0]
    return email.message_from_bytes(head + b"\r\n\r\n" + body, policy=email.policy.compat32)


def test_it_replaces_the_attachment_with_a_notice_and_keeps_the_rest() -> None:
    raw = with_attachment(EXE, "invoice.pdf.exe", text="Dear Bob, see attached.\r\n")
    ctx = context(raw, STRIP)
    services = FakeServices()
    res = strip_attachments(ctx, Outcome.accept(), services)
    assert res is not None and res.new_body is not None
    assert services.copies == [(raw, QuarantineQueue.ADMIN, "attachment stripped: invoice.pdf.exe")]
    msg = rebuilt(ctx, res.new_body)
    parts = [p for p in msg.walk() if not p.is_multipart()]
    assert len(parts) == 2
    assert "Dear Bob" in parts[0].get_payload(decode=True).decode()
    notice = parts[1].get_payload(decode=True).decode()
    assert "invoice.pdf.exe" in notice and "Q-0001" in notice and parts[1].get_filename() is None
    assert EXE not in res.new_body and b64(EXE)[:40] not in res.new_body
    assert any(e.name == "X-Bulwark-Stripped" for e in res.header_edits)
    ctx.close()


def test_it_strips_a_message_that_is_only_an_attachment() -> None:
    raw = (HEAD + b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
           b'Content-Disposition: attachment; filename="run.exe"\r\n\r\n' + b64(EXE))
    ctx = context(raw, STRIP)
    res = strip_attachments(ctx, Outcome.accept(), FakeServices())
    assert res is not None and res.new_body is not None and b"run.exe" in res.new_body
    deletes = {e.name for e in res.header_edits if e.op == "delete"}
    assert {"Content-Type", "Content-Transfer-Encoding", "Content-Disposition"} <= deletes
    ctx.close()


def test_it_does_nothing_for_clean_mail_or_refused_mail() -> None:
    ctx = context(with_attachment(b"hello", "a.txt", "text/plain"), STRIP)
    services = FakeServices()
    assert strip_attachments(ctx, Outcome.accept(), services) is None and services.copies == []
    ctx.close()
    ctx = context(with_attachment(EXE, "a.exe"), STRIP)
    assert strip_attachments(ctx, Outcome.reject(), services) is None and services.copies == []
    ctx.close()


def test_it_only_strips_when_the_layer_is_set_to_strip_or_the_policy_asks() -> None:
    ctx = context(with_attachment(EXE, "a.exe"))  # default action: refuse
    services = FakeServices()
    assert strip_attachments(ctx, Outcome.accept(), services) is None
    res = strip_attachments(ctx, Outcome.accept(body_transforms=("strip_attachments",)), services)
    assert res is not None and len(services.copies) == 1
    ctx.close()


def test_it_fails_closed_when_the_quarantine_copy_fails() -> None:
    ctx = context(with_attachment(EXE, "a.exe"), STRIP)
    with pytest.raises(OSError):
        strip_attachments(ctx, Outcome.accept(), FakeServices(fail=True))
    ctx.close()


def test_it_strips_several_parts_in_nested_multiparts() -> None:
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\n'
           b'Content-Type: multipart/alternative; boundary="i"\r\n\r\n--i\r\nContent-Type: text/plain\r\n\r\nplain\r\n'
           b"--i\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n--i--\r\n"
           b"--o\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
           b'Content-Disposition: attachment; filename="a.exe"\r\n\r\n' + b64(EXE) +
           b"--o\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=\"b.vbs\"\r\n\r\nMsgBox 1\r\n"
           b"--o--\r\n")
    ctx = context(raw, STRIP)
    res = strip_attachments(ctx, Outcome.accept(), FakeServices())
    assert res is not None and res.new_body is not None
    msg = rebuilt(ctx, res.new_body)
    leaves = [p for p in msg.walk() if not p.is_multipart()]
    texts = [p.get_payload(decode=True).decode() for p in leaves]
    assert texts[0].strip() == "plain" and "html" in texts[1]
    assert "a.exe" in texts[2] and "b.vbs" in texts[3] and "MsgBox" not in res.new_body.decode()
    ctx.close()


def test_it_holds_instead_of_stripping_when_the_blocked_part_is_hidden_by_ambiguity() -> None:
    from gateway_milter.layers.attachments import AttachmentLayer
    from tests.unit.av.mailbuild import TEXT_PART

    hidden = (b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
              b'Content-Disposition: attachment; filename="a.exe"\r\n\r\n' + b64(EXE))
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="aaa"; boundary="bbb"\r\n\r\n'
           + b"--aaa\r\n" + TEXT_PART + b"--aaa--\r\n--bbb\r\n" + hidden + b"--bbb--\r\n")
    ctx = context(raw, STRIP)
    services = FakeServices()
    assert strip_attachments(ctx, Outcome.accept(), services) is None and services.copies == []
    assert ctx.layer("attachments").has("ATTACHMENT_BLOCKED_HIDDEN")
    rules = AttachmentLayer().policy_rules(STRIP.settings_for("attachments"))
    assert rules[0].outcome.queue is QuarantineQueue.ADMIN
    ctx.close()
