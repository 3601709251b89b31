from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from webadmin.models import Domain, ListEntry, PublishedPolicy

pytestmark = pytest.mark.django_db

POLICY = """
gateway: {hostname: mx.example.com}
settings:
  lists: {block_action: refuse}
  antivirus: {mode: "off"}
domains:
  - name: example.com
    mail_servers: ["[10.0.0.5]:25"]
    settings: {size: {max_bytes: 2048}}
trusted_networks: [10.0.0.0/8]
lists:
  - {list: block, kind: sender, value: "*@spam.test"}
  - {list: allow, kind: ip, value: 192.0.2.0/24, domain: example.com, comment: partner}
"""


def _import(tmp_path: Path, text: str) -> str:
    f = tmp_path / "p.yaml"
    f.write_text(text)
    out = io.StringIO()
    call_command("policy", "import", str(f), stdout=out)
    return out.getvalue()


def test_it_round_trips_the_policy_file(tmp_path: Path) -> None:
    assert "published as version" in _import(tmp_path, POLICY)
    out = io.StringIO()
    call_command("policy", "export", stdout=out)
    exported = yaml.safe_load(out.getvalue())
    assert exported["domains"][0]["settings"] == {"size": {"max_bytes": 2048}}
    assert {e["value"] for e in exported["lists"]} == {"*@spam.test", "192.0.2.0/24"}
    # importing the export changes nothing (same fingerprint, same version)
    v = PublishedPolicy.objects.latest("version").version
    _import(tmp_path, out.getvalue())
    assert PublishedPolicy.objects.latest("version").version == v


def test_it_changes_nothing_when_the_file_is_invalid(tmp_path: Path) -> None:
    _import(tmp_path, POLICY)
    before = (Domain.objects.count(), ListEntry.objects.count(), PublishedPolicy.objects.count())
    bad = POLICY.replace("*@spam.test", "*@spam.test").replace("192.0.2.0/24", "192.0.2.0/99")
    with pytest.raises(CommandError) as e:
        _import(tmp_path, bad)
    assert "lists[1].value" in str(e.value) and "nothing changed" in str(e.value)
    assert (Domain.objects.count(), ListEntry.objects.count(), PublishedPolicy.objects.count()) == before
    with pytest.raises(CommandError) as e:
        _import(tmp_path, "lists: [unclosed")
    assert "not valid YAML" in str(e.value)
    # YAML's .nan and .inf (no JSON column stores them: the database refused with a traceback)
    for value in (".nan", ".inf", "-.inf", "1" + "0" * 400):
        with pytest.raises(CommandError) as e:
            _import(tmp_path, f"settings: {{scoring: {{quarantine_score: {value}}}}}\n")
        assert "settings.scoring.quarantine_score: must be a finite number" in str(e.value), str(e.value)
    # a file that is not UTF-8 text
    f = tmp_path / "binary.yaml"
    f.write_bytes(b"settings: {}\n\xa0\xff\x00\n")
    with pytest.raises(CommandError) as e:
        call_command("policy", "import", str(f), stdout=io.StringIO())
    assert "not UTF-8 text" in str(e.value)
    assert (Domain.objects.count(), ListEntry.objects.count(), PublishedPolicy.objects.count()) == before


def test_it_scans_messages_and_prints_json(tmp_path: Path) -> None:
    _import(tmp_path, POLICY)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "a.eml").write_bytes(b"From: x@spam.test\r\nTo: bob@example.com\r\nSubject: a\r\n\r\nhi\r\n")
    (tmp_path / "m" / "b.eml").write_bytes(b"From: ok@good.test\r\nTo: bob@example.com\r\nSubject: b\r\n\r\n" + b"x" * 4000)
    mbox = tmp_path / "box.mbox"
    mbox.write_bytes(b"From sender Sat Nov 28 00:00:00 2026\nFrom: ok@good.test\nTo: bob@example.com\nSubject: c\n\nhello\n")
    out = io.StringIO()
    call_command("scan", "--json", str(tmp_path / "m"), str(mbox), stdout=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    by = {Path(r["file"].split("#")[0]).name: r for r in rows}
    assert set(by) == {"a.eml", "b.eml", "box.mbox"}
    assert by["a.eml"]["action"] == "reject"
    assert {"name": "BLOCKLIST_SENDER", "score": 0.0} in [{k: s[k] for k in ("name", "score")} for s in by["a.eml"]["symbols"]]
    assert by["b.eml"]["action"] == "reject" and "size" in by["b.eml"]["reason"].lower() or \
        any(s["name"] == "MESSAGE_TOO_BIG" for s in by["b.eml"]["symbols"])
    assert by["box.mbox"]["action"] == "accept"
    for r in rows:
        assert {"file", "action", "score", "symbols", "reason", "trace"} <= set(r)
    with pytest.raises(CommandError):
        call_command("scan", str(tmp_path / "missing.eml"), stdout=io.StringIO())
