"""Attachment layer: names, double extensions, true types, archives, actions, directions."""

from __future__ import annotations

import zipfile
from typing import Any

import pytest

from gateway_milter.layers.attachments import (
    AttachmentLayer,
    AttachmentSettings,
    extensions_of,
)
from gateway_milter.layers.base import SettingsError, settings_from_dict
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import Action, Direction, QuarantineQueue
from tests.unit.av.mailbuild import context, plain, with_attachment, zip_bytes
from tests.unit.av.olebuild import vba_project_ole
from tests.unit.av.test_archives import EXE, sevenzip_bytes

LAYER = AttachmentLayer()


def run(raw: bytes, **settings: Any) -> tuple[set[str], dict[str, Any]]:
    s = settings_from_dict(AttachmentSettings, settings)
    ctx = context(raw)
    try:
        found = LAYER.check(ctx, s)
    finally:
        ctx.close()
    return {sym.name for sym in found.symbols}, found.facts


def test_it_passes_ordinary_mail() -> None:
    syms, facts = run(with_attachment(b"%PDF-1.4\n1 0 obj\n", "report.pdf", "application/pdf"))
    assert syms == set() and not facts["blocked"] and facts["attachments"][0]["name"] == "report.pdf"
    assert run(plain())[0] == set()


@pytest.mark.parametrize("name,symbol", [
    ("setup.exe", "ATTACHMENT_BLOCKED_EXTENSION"),
    ("invoice.pdf.exe", "ATTACHMENT_DOUBLE_EXTENSION"),
    ("invoice.PDF   .Scr", "ATTACHMENT_DOUBLE_EXTENSION"),
    ("trailing.exe. . ", "ATTACHMENT_BLOCKED_EXTENSION"),
    ("photo\u202egpj.js", "ATTACHMENT_BIDI_NAME"),
])
def test_it_blocks_dangerous_names(name: str, symbol: str) -> None:
    syms, facts = run(with_attachment(b"harmless text\n", name, "text/plain"))
    assert symbol in syms and "ATTACHMENT_BLOCKED" in syms and facts["blocked"]


def test_it_blocks_names_by_pattern_and_honours_allow_patterns() -> None:
    raw = with_attachment(b"text\n", "Payroll-2026.xlsx.txt", "text/plain")
    assert "ATTACHMENT_BLOCKED_NAME" in run(raw, blocked_name_patterns=["payroll-*"])[0]
    assert run(raw, blocked_name_patterns=["payroll-*"], allowed_name_patterns=["*.txt"])[0] == set()


def test_it_checks_every_name_a_client_could_show() -> None:
    raw = with_attachment(b"text\n", "notes.txt", "text/plain", name_param="notes.vbs")
    assert "ATTACHMENT_BLOCKED_EXTENSION" in run(raw)[0]


def test_it_finds_an_executable_behind_a_harmless_name() -> None:
    syms, facts = run(with_attachment(EXE, "invoice.pdf", "application/pdf"))
    assert {"ATTACHMENT_EXECUTABLE", "ATTACHMENT_TYPE_MISMATCH", "ATTACHMENT_BLOCKED"} <= syms
    assert facts["findings"][0]["detected"] == "application/x-dosexec"


def test_it_scores_a_mismatch_without_blocking_unless_asked() -> None:
    raw = with_attachment(b"GIF89a" + b"\0" * 50, "scan.pdf", "application/pdf")
    syms, _ = run(raw)
    assert "ATTACHMENT_TYPE_MISMATCH" in syms and "ATTACHMENT_BLOCKED" not in syms
    assert "ATTACHMENT_BLOCKED" in run(raw, block_type_mismatch=True)[0]


def test_it_blocks_by_detected_type_family() -> None:
    raw = with_attachment(b"GIF89a" + b"\0" * 50, "a.gif", "image/gif")
    assert "ATTACHMENT_BLOCKED_TYPE" in run(raw, blocked_types=["image/*"])[0]


def test_it_finds_names_and_types_inside_nested_archives() -> None:
    inner = zip_bytes({"docs/readme.txt": b"hi", "tool.dat": EXE})
    syms, facts = run(with_attachment(zip_bytes({"inner.zip": inner, "run.vbs": b"x"}), "files.zip"))
    reasons = " ".join(facts["findings"][0]["reasons"])
    assert "in archive: run.vbs" in reasons and "in archive: inner.zip/tool.dat" in reasons
    assert {"ATTACHMENT_BLOCKED_EXTENSION", "ATTACHMENT_EXECUTABLE"} <= syms


def test_it_blocks_encrypted_and_unscannable_archives() -> None:
    syms, _ = run(with_attachment(sevenzip_bytes({"a.txt": b"x"}, password="pw"), "secret.7z"))
    assert "ATTACHMENT_ENCRYPTED_ARCHIVE" in syms
    bomb = zip_bytes({"zeros": b"\0" * (8 * 1024 * 1024)})
    syms, facts = run(with_attachment(bomb, "bomb.zip"))
    assert "ATTACHMENT_ARCHIVE_UNSCANNABLE" in syms and "limit:ratio" in " ".join(facts["findings"][0]["reasons"])
    assert "ATTACHMENT_ARCHIVE_UNSCANNABLE" not in run(with_attachment(bomb, "bomb.zip"),
                                                       block_unscannable_archives=False)[0]


def test_it_finds_vba_macros_in_office_documents() -> None:
    syms, _ = run(with_attachment(vba_project_ole(), "report.doc", "application/msword"))
    assert "ATTACHMENT_MACRO" in syms and "ATTACHMENT_BLOCKED" in syms
    assert run(with_attachment(vba_project_ole(), "report.doc", "application/msword"), block_macros=False)[0] == set()


def test_it_finds_macros_inside_archives_and_ooxml_containers() -> None:
    docm = zip_bytes({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>",
                      "word/vbaProject.bin": vba_project_ole()})
    syms, facts = run(with_attachment(zip_bytes({"q3.docm": docm}), "docs.zip"))
    assert "ATTACHMENT_MACRO" in syms
    assert any("in archive" in r and "MACRO" in r for r in facts["findings"][0]["reasons"])


def test_it_treats_an_unreadable_office_document_as_a_macro_risk() -> None:
    broken = bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 600  # OLE2 signature, nothing readable
    syms, facts = run(with_attachment(broken, "report.doc", "application/msword"))
    assert "ATTACHMENT_MACRO" in syms
    assert "unreadable Office document" in " ".join(facts["findings"][0]["reasons"])


def test_it_skips_directions_not_selected() -> None:
    raw = with_attachment(EXE, "a.exe")
    ctx = context(raw)
    ctx.direction = Direction.OUTBOUND
    found = LAYER.check(ctx, AttachmentSettings(directions=("inbound",)))
    ctx.close()
    assert found.symbols == () and "skipped" in found.facts


def test_it_maps_actions_to_policy_rules() -> None:
    (r,) = LAYER.policy_rules(AttachmentSettings())
    assert r.outcome.action is Action.REJECT and r.outcome.reply and r.outcome.reply.code == "554"
    (r,) = LAYER.policy_rules(AttachmentSettings(action="quarantine_user"))
    assert r.outcome.queue is QuarantineQueue.USER
    (r,) = LAYER.policy_rules(AttachmentSettings(action="quarantine_admin"))
    assert r.outcome.queue is QuarantineQueue.ADMIN
    (r,) = LAYER.policy_rules(AttachmentSettings(action="strip"))
    assert r.symbols == ("ATTACHMENT_BLOCKED_HIDDEN",) and r.outcome.queue is QuarantineQueue.ADMIN


def test_it_lists_the_parts_to_strip() -> None:
    _, facts = run(with_attachment(EXE, "a.exe"), action="strip")
    assert facts["strip_parts"] == [[1]]


@pytest.mark.parametrize("bad", [{"action": "delete"}, {"blocked_extensions": [".exe"]},
                                 {"blocked_types": ["exe"]}, {"directions": ["sideways"]},
                                 {"archive_max_ratio": 1}])
def test_it_rejects_bad_settings(bad: dict[str, Any]) -> None:
    with pytest.raises(SettingsError):
        settings_from_dict(AttachmentSettings, bad)


def test_it_uses_per_domain_settings_from_the_snapshot() -> None:
    snap = PolicySnapshot.from_document({
        "domains": [{"name": "example.test", "settings": {"attachments": {"blocked_extensions": ["txt"]}}}]})
    assert snap.settings_for("attachments", "example.test").blocked_extensions == ("txt",)
    assert "exe" in snap.settings_for("attachments", None).blocked_extensions


def test_it_splits_extensions() -> None:
    assert extensions_of("a.tar.GZ") == ["gz", "tar"]
    assert extensions_of("dir\\evil.pdf .exe..") == ["exe", "pdf"]
    assert extensions_of("README") == []


def test_it_never_needs_a_file_path_for_members() -> None:
    raw = with_attachment(zip_bytes({"../../../../tmp/x.exe": EXE}, zipfile.ZIP_STORED), "a.zip")
    _, facts = run(raw)
    assert any("../../../../tmp/x.exe" in r for r in facts["findings"][0]["reasons"])


def test_it_finds_scripts_by_content_whatever_the_name() -> None:
    syms, facts = run(with_attachment(b"#!/bin/sh\nrm -rf ~\n" + b"# padding\n" * 300, "notes.txt", "text/plain"))
    assert "ATTACHMENT_SCRIPT" in syms and facts["findings"][0]["detected"] == "text/x-shellscript"


def test_it_finds_an_executable_posing_as_the_message_body() -> None:
    from tests.unit.av.mailbuild import HEAD, b64

    raw = HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(EXE)
    syms, _ = run(raw)
    assert "ATTACHMENT_EXECUTABLE" in syms


def test_it_treats_a_password_protected_office_document_as_a_macro_risk() -> None:
    from tests.unit.av.olebuild import encrypted_office_ole

    syms, facts = run(with_attachment(encrypted_office_ole(), "salaries.xlsx"))
    assert "ATTACHMENT_MACRO" in syms
    assert "encrypted document" in " ".join(facts["findings"][0]["reasons"])


def test_it_judges_names_inside_rar_archives() -> None:
    from tests.unit.av.test_archives import rar5_bytes

    syms, facts = run(with_attachment(rar5_bytes({"invoice.pdf.exe": b"MZ"}), "docs.rar"))
    reasons = " ".join(facts["findings"][0]["reasons"])
    assert {"ATTACHMENT_DOUBLE_EXTENSION", "ATTACHMENT_ARCHIVE_UNSCANNABLE"} <= syms
    assert "in archive: invoice.pdf.exe" in reasons and "unsupported:rar" in reasons


def test_it_judges_parts_that_only_another_mime_reading_shows() -> None:
    from tests.unit.av.mailbuild import HEAD, TEXT_PART, b64

    hidden = (b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
              b'Content-Disposition: attachment; filename="invoice.pdf.exe"\r\n\r\n' + b64(EXE))
    raw = (HEAD + b'Content-Type: multipart/mixed; boundary="aaa"; boundary="bbb"\r\n\r\n'
           + b"--aaa\r\n" + TEXT_PART + b"--aaa--\r\n--bbb\r\n" + hidden + b"--bbb--\r\n")
    syms, facts = run(raw)
    assert {"ATTACHMENT_BLOCKED_HIDDEN", "ATTACHMENT_DOUBLE_EXTENSION", "ATTACHMENT_EXECUTABLE",
            "ATTACHMENT_BLOCKED"} <= syms
    hidden_finding = next(f for f in facts["findings"] if f.get("hidden"))
    assert hidden_finding["name"] == "invoice.pdf.exe" and facts["strip_parts"] == []
    # and an archive only visible there is listed too
    raw2 = raw.replace(b64(EXE), b64(zip_bytes({"run.vbs": b"x"}))).replace(b"invoice.pdf.exe", b"files.zip")
    syms2, facts2 = run(raw2)
    assert "ATTACHMENT_BLOCKED_HIDDEN" in syms2
    assert any("in archive: run.vbs" in r for f in facts2["findings"] for r in f["reasons"])


def test_it_judges_files_uuencoded_in_a_text_body() -> None:
    from tests.unit.av.mailbuild import AMBIGUOUS

    syms, facts = run(AMBIGUOUS["uuencoded_in_text"])
    assert {"ATTACHMENT_BLOCKED_HIDDEN", "ATTACHMENT_BLOCKED_EXTENSION"} <= syms
    assert any(f.get("hidden") and f["name"] == "invoice.exe" for f in facts["findings"])


def test_an_attachment_behind_a_folded_boundary_is_blocked() -> None:
    # the boundary folded inside its quotes (RFC 5322 allows it; mail readers unfold it): the
    # primary reading now has the part (before, only the lenient alternative reading had it)
    raw = (b"From: a@sender.test\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="simple\r\n boundary"\r\n\r\n'
           b"--simple boundary\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
           b"--simple boundary\r\nContent-Type: application/octet-stream\r\n"
           b'Content-Disposition: attachment; filename="setup.exe"\r\n\r\nMZ\x90\x00\r\n--simple boundary--\r\n')
    syms, facts = run(raw)
    assert "ATTACHMENT_BLOCKED_EXTENSION" in syms and facts["blocked"]
