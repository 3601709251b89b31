"""DMARC aggregate reports (RFC 7489 section 7.2 and appendix C), Django-free.

The DMARC layer appends one JSON line per evaluated message to
``GATEWAY_DATA_DIR/dmarc/YYYY-MM-DD.jsonl``; :func:`aggregate` rolls a day up per policy
domain, :func:`report_xml` renders the appendix C XML, :func:`report_filename` and
:func:`report_subject` follow section 7.2.1.1, and :func:`verified_destinations` applies the
external-destination check of section 7.1 (a ``rua`` outside the policy domain's
organisational domain needs ``<domain>._report._dmarc.<rua-domain>`` to say ``v=DMARC1``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import gzip
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_milter.auth.psl import org_domain
from gateway_milter.net.resolver import Resolver, get_resolver

DKIM_RESULTS = {"none", "pass", "fail", "policy", "neutral", "temperror", "permerror"}
SPF_RESULTS = {"none", "neutral", "pass", "fail", "softfail", "temperror", "permerror"}
REASONS = {"forwarded", "sampled_out", "trusted_forwarder", "mailing_list", "local_policy", "other"}


@dataclass
class DomainReport:
    policy_domain: str
    published: dict[str, Any]
    rua: list[str]
    begin: int
    end: int
    rows: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return sum(self.rows.values())


def day_bounds(day: str) -> tuple[int, int]:
    d = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    begin = calendar.timegm(d.timetuple())
    return begin, begin + 86399


def _row_key(line: dict[str, Any]) -> str:
    """The identity of a report row: everything but the count (JSON, sorted keys)."""
    dkim = sorted((str(d.get("domain", "")), str(d.get("selector", "")), str(d.get("result", "none")))
                  for d in line.get("dkim") or [])
    spf = line.get("spf") or {}
    return json.dumps({
        "ip": line.get("source_ip", ""), "disposition": line.get("disposition", "none"),
        "dkim_aligned": bool(line.get("dkim_aligned")), "spf_aligned": bool(line.get("spf_aligned")),
        "override": line.get("override"), "header_from": line.get("header_from", ""),
        "envelope_from": line.get("envelope_from", ""), "dkim": dkim,
        "spf": [str(spf.get("domain", "")), str(spf.get("scope", "mfrom")), str(spf.get("result", "none"))],
    }, sort_keys=True)


def aggregate(path: Path, day: str) -> dict[str, DomainReport]:
    """Roll up one day's JSON lines per policy domain (malformed lines are skipped)."""
    begin, end = day_bounds(day)
    out: dict[str, DomainReport] = {}
    with path.open(encoding="utf-8") as fh:
        for raw in fh:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(line, dict) or not line.get("policy_domain") or not line.get("rua"):
                continue
            dom = str(line["policy_domain"]).lower()
            rep = out.get(dom)
            published = {k: line.get(k) for k in ("p", "sp", "pct", "adkim", "aspf")}
            if rep is None:
                rep = out[dom] = DomainReport(dom, published, list(line["rua"]), begin, end)
            else:  # the policy in force last that day is the one reported
                rep.published, rep.rua = published, list(line["rua"])
            rep.rows[_row_key(line)] += 1
    return out


def report_id(org: str, rep: DomainReport) -> str:
    h = hashlib.sha256(f"{org}|{rep.policy_domain}|{rep.begin}".encode()).hexdigest()[:16]
    return f"{rep.begin}.{h}"


def report_xml(rep: DomainReport, org_name: str, org_email: str) -> bytes:
    """The appendix C ``feedback`` document."""
    root = ET.Element("feedback")
    ET.SubElement(root, "version").text = "1.0"
    meta = ET.SubElement(root, "report_metadata")
    ET.SubElement(meta, "org_name").text = org_name
    ET.SubElement(meta, "email").text = org_email
    ET.SubElement(meta, "report_id").text = report_id(org_name, rep)
    rng = ET.SubElement(meta, "date_range")
    ET.SubElement(rng, "begin").text = str(rep.begin)
    ET.SubElement(rng, "end").text = str(rep.end)
    pub = ET.SubElement(root, "policy_published")
    ET.SubElement(pub, "domain").text = rep.policy_domain
    ET.SubElement(pub, "adkim").text = str(rep.published.get("adkim") or "r")
    ET.SubElement(pub, "aspf").text = str(rep.published.get("aspf") or "r")
    ET.SubElement(pub, "p").text = str(rep.published.get("p") or "none")
    ET.SubElement(pub, "sp").text = str(rep.published.get("sp") or rep.published.get("p") or "none")
    ET.SubElement(pub, "pct").text = str(rep.published.get("pct") if rep.published.get("pct") is not None else 100)
    for key, count in sorted(rep.rows.items()):
        k = json.loads(key)
        rec = ET.SubElement(root, "record")
        row = ET.SubElement(rec, "row")
        ET.SubElement(row, "source_ip").text = k["ip"] or "0.0.0.0"
        ET.SubElement(row, "count").text = str(count)
        pe = ET.SubElement(row, "policy_evaluated")
        disposition = k["disposition"] if k["disposition"] in ("none", "quarantine", "reject") else "none"
        ET.SubElement(pe, "disposition").text = disposition
        ET.SubElement(pe, "dkim").text = "pass" if k["dkim_aligned"] else "fail"
        ET.SubElement(pe, "spf").text = "pass" if k["spf_aligned"] else "fail"
        if k["override"]:
            reason = ET.SubElement(pe, "reason")
            ET.SubElement(reason, "type").text = k["override"] if k["override"] in REASONS else "other"
        ids = ET.SubElement(rec, "identifiers")
        if k["envelope_from"]:
            ET.SubElement(ids, "envelope_from").text = k["envelope_from"]
        ET.SubElement(ids, "header_from").text = k["header_from"]
        auth = ET.SubElement(rec, "auth_results")
        for d, s, r in k["dkim"]:
            de = ET.SubElement(auth, "dkim")
            ET.SubElement(de, "domain").text = d
            if s:
                ET.SubElement(de, "selector").text = s
            ET.SubElement(de, "result").text = r if r in DKIM_RESULTS else "none"
        sd, scope, sr = k["spf"]
        se = ET.SubElement(auth, "spf")  # the schema requires at least one spf element
        ET.SubElement(se, "domain").text = sd or k["header_from"]
        ET.SubElement(se, "scope").text = "helo" if scope == "helo" else "mfrom"
        ET.SubElement(se, "result").text = sr if sr in SPF_RESULTS else "none"
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + bytes(ET.tostring(root, encoding="utf-8"))


def report_filename(receiver: str, rep: DomainReport) -> str:
    """Section 7.2.1.1: ``receiver "!" policy-domain "!" begin "!" end ".xml.gz"``."""
    safe = re.sub(r"[^A-Za-z0-9.-]", "_", receiver)
    return f"{safe}!{rep.policy_domain}!{rep.begin}!{rep.end}.xml.gz"


def report_subject(receiver: str, rep: DomainReport, org: str) -> str:
    return f"Report Domain: {rep.policy_domain} Submitter: {receiver} Report-ID: <{report_id(org, rep)}>"


def gzipped(xml: bytes) -> bytes:
    return gzip.compress(xml, mtime=0)


def _size_limit(spec: str) -> int | None:
    m = re.match(r"^(\d+)([kmgt]?)$", spec.lower())
    if not m:
        return None
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[m.group(2)]
    return int(m.group(1)) * mult


def verified_destinations(rep: DomainReport, resolver: Resolver | None = None) -> list[tuple[str, int | None]]:
    """(address, size limit) for each ``rua`` allowed by section 7.1."""
    res = resolver or get_resolver()
    out = []
    for uri in rep.rua:
        body = uri[len("mailto:"):] if uri.lower().startswith("mailto:") else ""
        addr, _, limit = body.partition("!")
        if "@" not in addr:
            continue
        rua_domain = addr.rpartition("@")[2].lower()
        if org_domain(rua_domain) != org_domain(rep.policy_domain):
            ans = res.query_txt(f"{rep.policy_domain}._report._dmarc.{rua_domain}")
            if not ans.ok or not any(r.replace(" ", "").lower().startswith("v=dmarc1") for r in ans.records):
                continue
        out.append((addr, _size_limit(limit) if limit else None))
    return out
