"""DMARC aggregate reports: data collected by the layer, rolled up and mailed by the Celery task
as valid RFC 7489 appendix C XML; the dkim management command."""

from __future__ import annotations

import gzip
import io
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from gateway_milter.auth import dmarcreport
from gateway_milter.layers.dmarc import append_report_line
from gateway_milter.net import resolver as r

DAY = "2026-11-20"


def line(ip: str, disposition: str = "none", dkim_ok: bool = True, **kw: Any) -> dict[str, Any]:
    base = {"t": 1795651200, "policy_domain": "example.test", "header_from": "example.test", "p": "reject",
            "sp": None, "pct": 100, "adkim": "r", "aspf": "r", "rua": ["mailto:dmarc@example.test!10m",
                                                                        "mailto:reports@thirdparty.example"],
            "source_ip": ip, "envelope_from": "example.test", "disposition": disposition, "override": None,
            "dkim_aligned": dkim_ok, "spf_aligned": False,
            "spf": {"domain": "example.test", "result": "fail", "scope": "mfrom"},
            "dkim": [{"domain": "example.test", "selector": "sel1", "result": "pass" if dkim_ok else "fail"}]}
    base.update(kw)
    return base


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GATEWAY_DMARC_ORG", "bulwark.test")
    be = r.StaticBackend({("example.test._report._dmarc.thirdparty.example", "TXT"): "SERVFAIL"})
    prev = r.set_resolver(r.Resolver(backend=be))
    yield tmp_path
    r.set_resolver(prev)


def test_it_aggregates_a_day_and_renders_appendix_c_xml(data_dir: Path) -> None:
    for _ in range(3):
        append_report_line(line("192.0.2.10"), DAY)
    append_report_line(line("203.0.113.5", "reject", dkim_ok=False), DAY)
    (data_dir / "dmarc" / f"{DAY}.jsonl").open("a").write("not json\n")
    reps = dmarcreport.aggregate(data_dir / "dmarc" / f"{DAY}.jsonl", DAY)
    rep = reps["example.test"]
    assert rep.count == 4 and len(rep.rows) == 2
    root = ET.fromstring(dmarcreport.report_xml(rep, "bulwark.test", "dmarc-reports@bulwark.test"))
    assert root.tag == "feedback"
    assert root.findtext("report_metadata/org_name") == "bulwark.test"
    assert int(root.findtext("report_metadata/date_range/end") or 0) - int(
        root.findtext("report_metadata/date_range/begin") or 0) == 86399
    assert root.findtext("policy_published/p") == "reject"
    rows = {rec.findtext("row/source_ip"): rec for rec in root.findall("record")}
    assert rows["192.0.2.10"].findtext("row/count") == "3"
    assert rows["192.0.2.10"].findtext("row/policy_evaluated/dkim") == "pass"
    bad = rows["203.0.113.5"]
    assert (bad.findtext("row/policy_evaluated/disposition"), bad.findtext("auth_results/dkim/result"),
            bad.findtext("auth_results/spf/result")) == ("reject", "fail", "fail")
    assert dmarcreport.report_filename("bulwark.test", rep).endswith(".xml.gz")


def test_it_mails_each_report_once_to_verified_destinations(data_dir: Path, mailoutbox: list[Any]) -> None:
    from reports.dmarc_tasks import send_aggregate_reports

    append_report_line(line("192.0.2.10"), DAY)
    append_report_line(line("192.0.2.10"), time.strftime("%Y-%m-%d", time.gmtime()))  # today: not yet
    assert send_aggregate_reports.delay().get() == 1
    [mail] = mailoutbox
    assert mail.to == ["dmarc@example.test"]  # thirdparty.example did not authorise (section 7.1)
    assert mail.subject.startswith("Report Domain: example.test Submitter: bulwark.test Report-ID: <")
    name, content, mimetype = mail.attachments[0]
    assert mimetype == "application/gzip" and name.startswith("bulwark.test!example.test!")
    assert ET.fromstring(gzip.decompress(content)).findtext("record/row/count") == "1"
    assert send_aggregate_reports.delay().get() == 0  # idempotent
    assert json.loads((data_dir / "dmarc" / f"{DAY}.sent").read_text()) == ["example.test"]


def test_it_manages_dkim_keys_from_the_command_line(data_dir: Path) -> None:
    out = io.StringIO()
    call_command("dkim", "generate", "example.test", "--bits", "1024", stdout=out)
    assert out.getvalue().startswith('bulwark1._domainkey.example.test. IN TXT ( "v=DKIM1; k=rsa; p=')
    out = io.StringIO()
    call_command("dkim", "rotate", "example.test", "--bits", "1024", stdout=out)
    assert "bulwark2._domainkey" in out.getvalue() and "dkim activate example.test bulwark2" in out.getvalue()
    out = io.StringIO()
    call_command("dkim", "show", "--json", stdout=out)
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(x["selector"], x["active"]) for x in rows] == [("bulwark1", True), ("bulwark2", False)]
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("dkim", "generate", "../etc", stdout=io.StringIO())
