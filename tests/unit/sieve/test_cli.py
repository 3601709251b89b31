"""``sieve check`` and ``sieve test`` (gateway_milter.sieve.cli, wrapped by manage.py sieve)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from gateway_milter.sieve import cli

SCRIPT = r'''require ["fileinto", "reject", "imap4flags", "copy", "body", "editheader", "vnd.bulwark", "envelope"];
if header :contains "X-Spam-Flag" "YES" { fileinto :flags "\\Seen" "Junk"; stop; }
if envelope :domain "from" "partner.test" { fileinto :copy "Partners"; redirect :copy "archive@example.org"; }
if body :contains "discount" { addheader "X-Filtered" "yes"; deleteheader "X-Old"; }
if bulwark_ip :cidr "10.0.0.0/8" { reject "internal senders may not say that"; }
'''


def files(tmp_path: Path, msg: bytes) -> tuple[str, str]:
    s, m = tmp_path / "s.sieve", tmp_path / "m.eml"
    s.write_text(SCRIPT)
    m.write_bytes(msg)
    return str(s), str(m)


def test_it_prints_actions_one_per_line(tmp_path: Path) -> None:
    s, m = files(tmp_path, b"From: a@x.test\nX-Old: 1\nSubject: s\n\nA discount for you\n")
    out = io.StringIO()
    assert cli.test(s, m, out, mail_from="bob@partner.test", rcpt=["u@example.com"]) == 0
    assert out.getvalue().splitlines() == [
        "fileinto :copy Partners", "redirect :copy archive@example.org", "addheader X-Filtered: yes",
        "deleteheader X-Old: 1", "keep (implicit)"]


def test_it_prints_the_documented_json(tmp_path: Path) -> None:
    s, m = files(tmp_path, b"From: a@x.test\nX-Spam-Flag: YES\n\nbody\n")
    out = io.StringIO()
    assert cli.test(s, m, out, as_json=True) == 0
    doc = json.loads(out.getvalue())
    assert doc == {"actions": [{"action": "fileinto", "mailbox": "Junk", "flags": ["\\Seen"], "copy": False}],
                   "implicit_keep": False, "error": None}


def test_it_uses_the_client_ip_and_reports_conflicts_as_errors(tmp_path: Path) -> None:
    s, m = files(tmp_path, b"From: a@x.test\n\nno offers\n")
    out = io.StringIO()
    assert cli.test(s, m, out, ip="10.2.3.4", as_json=True) == 0
    assert json.loads(out.getvalue())["actions"] == [{"action": "reject", "reason": "internal senders may not say that"}]
    out = io.StringIO()
    assert cli.test(s, m, out, ip="10.2.3.4", mail_from="bob@partner.test", as_json=True) == 1
    doc = json.loads(out.getvalue())
    assert doc["actions"] == [] and doc["implicit_keep"] is True and "conflicts" in doc["error"]


def test_it_checks_scripts_with_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sieve"
    bad.write_text('require "fileinto";\nif header :contains "Subject" "x" {\n  fileinto "A"\n}\n')
    out = io.StringIO()
    assert cli.check(str(bad), out) == 1
    assert out.getvalue().startswith(f"{bad}:4:1: expected end of command")
    good = tmp_path / "good.sieve"
    good.write_text(SCRIPT)
    out = io.StringIO()
    assert cli.check(str(good), out) == 0


class StrictOut(io.StringIO):
    """A stdout that encodes strictly, as a UTF-8 terminal's does: surrogates raise."""

    def write(self, s: str) -> int:
        s.encode("utf-8")
        return super().write(s)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)


def test_a_file_name_or_script_text_that_is_not_utf8_is_printed_as_escapes(tmp_path: Path) -> None:
    # a surrogate from a non-UTF-8 file name ended the command with UnicodeEncodeError on any
    # UTF-8 terminal; a script's own text that is not UTF-8 made the compiler raise it
    bad = os.fsdecode(bytes(tmp_path) + b"/bad\xe9.sieve")
    Path(bad).write_bytes(b'require "editheader";\naddheader "X-T" "caf\xe9";\n')
    out = StrictOut()
    assert cli.check(bad, out) == 1
    assert out.getvalue().startswith(os.fsdecode(bytes(tmp_path)) + "/bad\\xe9.sieve:2:")
    assert "not valid UTF-8" in out.getvalue()
    good = os.fsdecode(bytes(tmp_path) + b"/ok\xe9.sieve")
    Path(good).write_bytes(b'require "editheader";\naddheader "X-T" "caf\xc3\xa9";\n')
    m = tmp_path / "m.eml"
    m.write_bytes(b"From: a@x.test\n\nbody\n")
    out = StrictOut()
    assert cli.check(good, out) == 0 and out.getvalue().endswith("ok\\xe9.sieve: OK\n")
    out = StrictOut()
    assert cli.test(good, str(m), out) == 0
    assert "addheader X-T: caf\u00e9" in out.getvalue()
    out = StrictOut()
    assert cli.test(bad, str(m), out) == 2 and "bad\\xe9.sieve:2:" in out.getvalue()
