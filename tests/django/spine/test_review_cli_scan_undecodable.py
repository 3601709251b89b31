"""``manage.py scan`` prints a file name that is not UTF-8 (a maildir copied from an old Latin-1
system) and a message's raw 8-bit header bytes (a recipient taken from ``To:``) with the bad
bytes escaped: they were written as Python decoded them, with surrogates, and a stdout that
encodes strictly (any UTF-8 locale but C) raised UnicodeEncodeError and ended the scan with a
traceback at that message."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.django.spine.test_scan_side_effects import publish

pytestmark = pytest.mark.django_db


def _scan(path: Path) -> list[str]:
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", errors="strict")  # (sys.stdout in en_US.UTF-8)
    call_command("scan", "--ip", "198.51.100.9", str(path), stdout=out)
    out.flush()
    return raw.getvalue().decode().splitlines()


def test_it_prints_a_non_utf8_file_name_escaped(tmp_path: Path) -> None:
    publish(tmp_path)
    d = tmp_path / "mail"
    d.mkdir()
    (d / os.fsdecode(b"caf\xe9.eml")).write_bytes(b"From: a@x.test\r\nTo: u@example.com\r\nSubject: s\r\n\r\nhi\r\n")
    first = _scan(d)[0]
    assert first.startswith(f"{d}/caf\\xe9.eml: "), first


def test_it_prints_a_raw_8bit_recipient_escaped(tmp_path: Path) -> None:
    publish(tmp_path)
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"From: a@x.test\r\nTo: J\xe9r\xf4me <j\xe9r@elsewhere.test>\r\nSubject: caf\xe9\r\n\r\nhi\r\n")
    lines = _scan(eml)
    assert lines[0].startswith(f"{eml}: reject"), lines
    assert any("j\\xe9r@elsewhere.test" in line for line in lines), lines
