"""DMARC (RFC 7489): policy discovery, identifier alignment and the policy to apply.

Needs the ``spf`` and ``dkim`` results (and ``arc`` for trusted forwarders). The policy record
is looked up at ``_dmarc.<From domain>``, then at ``_dmarc.<organisational domain>`` (offline
Public Suffix List, docs/decisions/0021-offline-public-suffix-list.md). DMARC passes when an
SPF pass or a DKIM pass is aligned with the From domain (relaxed: same organisational domain;
strict: same name). A DNS timeout gives ``temperror``, never a pass.

What a failure does is configurable: ``reject_handling`` honour (``DMARC_FAIL_REJECT`` →
refuse), quarantine (quarantine instead) or score (symbols only); ``quarantine_handling``
honour or score. ``pct`` is applied (a sampled-out message is handled one step softer, as
section 6.6.4 says). Local overrides: ``no_action_domains`` (never acted on) and trusted ARC
sealers (``ARC_TRUSTED`` with a passing chain) turn a failure into ``DMARC_ARC_OVERRIDE``.

Symbols: ``DMARC_PASS``, ``DMARC_FAIL_REJECT``, ``DMARC_FAIL_QUARANTINE``, ``DMARC_FAIL_NONE``,
``DMARC_NONE`` (no policy), ``DMARC_TEMPERROR``, ``DMARC_PERMERROR``, ``DMARC_ARC_OVERRIDE``,
``DMARC_LOCAL_OVERRIDE``. Facts: ``result``, ``from_domain``, ``policy_domain``, ``policy``
(the p or sp that applies), ``pct``, ``adkim``/``aspf``, ``spf_aligned``, ``dkim_aligned``,
``dkim_domains``, ``disposition`` (none/quarantine/reject after handling), ``override``, ``rua``.

Aggregate-report data: one JSON line per message with a published ``rua`` is appended to
``GATEWAY_DATA_DIR/dmarc/YYYY-MM-DD.jsonl`` (one ``write`` on an O_APPEND file: no database
on the hot path); the Celery task ``dmarc.send_aggregate_reports`` rolls them up daily.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway_milter import envconfig
from gateway_milter.auth.exemptions import exemption, score_of
from gateway_milter.auth.psl import aligned, org_domain
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.mime.headers import addresses
from gateway_milter.net.resolver import DnsBudget, Resolver, budget_for, get_resolver
from gateway_milter.verdict import FailMode, Outcome, QuarantineQueue, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

DEFAULT_SCORES: dict[str, float] = {
    "DMARC_PASS": -1.0, "DMARC_FAIL_REJECT": 5.0, "DMARC_FAIL_QUARANTINE": 3.0, "DMARC_FAIL_NONE": 0.5,
    "DMARC_NONE": 0.0, "DMARC_TEMPERROR": 0.0, "DMARC_PERMERROR": 0.5, "DMARC_ARC_OVERRIDE": 0.0,
    "DMARC_LOCAL_OVERRIDE": 0.0,
}
POLICIES = ("none", "quarantine", "reject")


class RecordError(ValueError):
    """``code`` is OpenDMARC-style: ERROR_EMPTY, ERROR_BAD_VERSION, ERROR_BAD_VALUE, ERROR_NO_REQUIRED_P."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    p: str
    sp: str | None = None
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    fo: str = "0"
    rf: str = "afrf"
    ri: int = 86400


def parse_record(text: str) -> DmarcRecord:
    """RFC 7489 section 6.3 (tags), strictly; unknown tags are ignored (section 6.3)."""
    t = text.strip()
    if not t:
        raise RecordError("ERROR_EMPTY", "empty record")
    parts = [p.strip() for p in t.split(";")]
    first = parts[0].replace(" ", "")
    if first != "v=DMARC1":
        raise RecordError("ERROR_BAD_VERSION", "record must start with v=DMARC1")
    tags: dict[str, str] = {}
    for p in parts[1:]:
        if not p:
            continue
        k, eq, v = p.partition("=")
        if not eq:
            raise RecordError("ERROR_BAD_VALUE", f"malformed tag {p!r}")
        tags.setdefault(k.strip().lower(), v.strip())
    if "p" not in tags:
        raise RecordError("ERROR_NO_REQUIRED_P", "no p= tag")

    def policy(name: str) -> str:
        v = tags[name].lower()
        if v not in POLICIES:
            raise RecordError("ERROR_BAD_VALUE", f"{name}={tags[name]!r}")
        return v

    def mode(name: str) -> str:
        v = tags.get(name, "r").lower()
        if v not in ("r", "s"):
            raise RecordError("ERROR_BAD_VALUE", f"{name}={tags[name]!r}")
        return v

    p = policy("p")
    sp = policy("sp") if "sp" in tags else None
    pct_s = tags.get("pct", "100")
    if not pct_s.isdigit() or not 0 <= int(pct_s) <= 100:
        raise RecordError("ERROR_BAD_VALUE", f"pct={pct_s!r}")
    ri_s = tags.get("ri", "86400")
    if not ri_s.isdigit():
        raise RecordError("ERROR_BAD_VALUE", f"ri={ri_s!r}")
    rf = tags.get("rf", "afrf").lower()
    if any(f.strip() not in ("afrf", "iodef") for f in rf.split(":")):
        raise RecordError("ERROR_BAD_VALUE", f"rf={rf!r}")
    fo = tags.get("fo", "0")
    if any(f.strip() not in ("0", "1", "d", "s") for f in fo.split(":")):
        raise RecordError("ERROR_BAD_VALUE", f"fo={fo!r}")
    return DmarcRecord(p, sp, mode("adkim"), mode("aspf"), int(pct_s), _uris(tags.get("rua", "")),
                       _uris(tags.get("ruf", "")), fo, rf, int(ri_s))


def _uris(value: str) -> tuple[str, ...]:
    """Valid mailto: URIs only (section 6.2); others are ignored, as section 6.3 allows."""
    out = []
    for u in value.split(","):
        u = u.strip()
        m = re.match(r"^mailto:([^@\s/!]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63})(![0-9]+[kmgt]?)?$", u, re.IGNORECASE)
        if m:
            out.append("mailto:" + m.group(1) + (m.group(2) or ""))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Discovery:
    status: str  # found | none | temperror | permerror
    record: DmarcRecord | None = None
    policy_domain: str = ""
    error: str = ""


def discover(from_domain: str, resolver: Resolver | None = None, budget: DnsBudget | None = None) -> Discovery:
    """Section 6.6.3: the From domain's record, else the organisational domain's."""
    res = resolver or get_resolver()
    org = org_domain(from_domain)
    candidates = [from_domain] + ([org] if org and org != from_domain else [])
    for dom in candidates:
        ans = res.query_txt(f"_dmarc.{dom}", budget)
        if ans.temporary:
            return Discovery("temperror", None, dom, ans.status)
        records = [r for r in ans.records if r.replace(" ", "").lower().startswith("v=dmarc1")] if ans.ok else []
        if len(records) > 1:  # section 6.6.3 step 5: more than one record means none
            return Discovery("none", None, dom, "more than one DMARC record")
        if records:
            try:
                return Discovery("found", parse_record(records[0]), dom)
            except RecordError as e:
                return Discovery("permerror", None, dom, f"{e.code}: {e}")
    return Discovery("none")


@dataclass(frozen=True, slots=True)
class DmarcSettings(BaseSettings):
    reject_handling: str = "honour"  # honour | quarantine | score
    quarantine_handling: str = "honour"  # honour | score
    apply_pct: bool = True
    no_action_domains: tuple[str, ...] = ()  # local override: never act on these From domains
    arc_override: bool = True  # trusted ARC sealers may override a failure
    collect_reports: bool = True
    reject_text: str = "Message refused: DMARC policy of {domain} (p=reject)"
    scores: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.reject_handling not in ("honour", "quarantine", "score"):
            raise SettingsError("reject_handling", "must be honour, quarantine or score")
        if self.quarantine_handling not in ("honour", "score"):
            raise SettingsError("quarantine_handling", "must be honour or score")
        if "\n" in self.reject_text or "\r" in self.reject_text:
            raise SettingsError("reject_text", "must be one line")


def header_from_domain(ctx: MessageContext) -> tuple[str, str]:
    """(domain, problem): RFC 7489 section 6.6.1 needs exactly one From address."""
    values = ctx.header_values("From")
    if len(values) != 1:
        return "", f"{len(values)} From headers"
    addrs = [a for _, a in addresses(values) if a]
    if len(addrs) != 1 or "@" not in addrs[0]:
        return "", "From must hold exactly one address"
    return addrs[0].rpartition("@")[2].strip().lower().rstrip("."), ""


def _sampled(ctx: MessageContext, pct: int) -> bool:
    if pct >= 100:
        return True
    h = int(hashlib.sha256(ctx.log_id.encode()).hexdigest()[:8], 16) % 100
    return h < pct


class DmarcLayer(Layer[DmarcSettings]):
    id = "dmarc"
    stage = Stage.EOM
    fail_mode = FailMode.UNKNOWN
    Settings = DmarcSettings
    budget_s = 10.0
    title = "DMARC"
    description = "DMARC (RFC 7489) policy, alignment and handling"

    prefetch_at_eom = True

    def prefetch(self, ctx: MessageContext, settings: DmarcSettings) -> None:
        """When end of message starts (``prefetch_at_eom``: the From header is known):
        start the policy lookups ``check`` makes (the From domain's and its organisational
        domain's), so that they come while antivirus, DKIM, Bayes and the rules compute."""
        if exemption(ctx, allowlist=False):
            return
        dom, _ = header_from_domain(ctx)
        if not dom:
            return
        res, budget = get_resolver(), budget_for(ctx)
        res.prefetch(f"_dmarc.{dom}", "TXT", budget)
        org = org_domain(dom)
        if org and org != dom:
            res.prefetch(f"_dmarc.{org}", "TXT", budget)

    def check(self, ctx: MessageContext, settings: DmarcSettings) -> LayerFindings:
        def sym(name: str, detail: str = "") -> Any:
            return self.symbol(name, score_of(settings.scores, DEFAULT_SCORES, name), detail)

        why = exemption(ctx, allowlist=False)
        if why:
            return LayerFindings({"exempt": why})
        from_domain, problem = header_from_domain(ctx)
        if not from_domain:
            return LayerFindings({"result": "permerror", "error": problem}, (sym("DMARC_PERMERROR", problem),))
        budget = budget_for(ctx)
        res = get_resolver()
        res.prefetch(f"_dmarc.{from_domain}", "TXT", budget)  # both candidates at once (section 6.6.3)
        org = org_domain(from_domain)
        if org and org != from_domain:
            res.prefetch(f"_dmarc.{org}", "TXT", budget)
        # SPF and DKIM (their DNS) run while the policy lookups above are in flight
        spf = ctx.layer("spf")
        dkim = ctx.layer("dkim")
        budget = self.dns_budget(ctx)  # (its own time starts once they have answered)
        disc = discover(from_domain, budget=budget)
        facts: dict[str, Any] = {"from_domain": from_domain, "policy_domain": disc.policy_domain}
        if disc.status == "temperror":
            facts.update(result="temperror", error=disc.error)
            return LayerFindings(facts, (sym("DMARC_TEMPERROR", from_domain),))
        if disc.status == "permerror":
            facts.update(result="permerror", error=disc.error)
            return LayerFindings(facts, (sym("DMARC_PERMERROR", disc.error),))
        if disc.record is None:
            facts.update(result="none")
            return LayerFindings(facts, (sym("DMARC_NONE", from_domain),))
        rec = disc.record
        spf_domain = spf.fact("domain", "") if spf.fact("identity") == "mailfrom" else ""
        spf_aligned = spf.fact("result") == "pass" and bool(spf_domain) and aligned(spf_domain, from_domain,
                                                                                   rec.aspf == "s")
        dkim_domains = list(dkim.fact("pass_domains", []) or [])
        dkim_aligned = any(aligned(d, from_domain, rec.adkim == "s") for d in dkim_domains)
        # sp applies when the record was found at the organisational domain for a subdomain
        is_sub = disc.policy_domain != from_domain
        policy = (rec.sp or rec.p) if is_sub else rec.p
        facts.update(policy=policy, p=rec.p, sp=rec.sp, pct=rec.pct, adkim=rec.adkim, aspf=rec.aspf,
                     spf_aligned=spf_aligned, dkim_aligned=dkim_aligned, dkim_domains=dkim_domains,
                     rua=list(rec.rua), override=None)
        symbols = []
        if spf_aligned or dkim_aligned:
            facts.update(result="pass", disposition="none")
            symbols.append(sym("DMARC_PASS", from_domain))
        else:
            # A temporary SPF/DKIM error on an identifier that would align may hide a pass:
            # temperror, not fail (a DNS problem must never cause a reject).
            spf_temp = spf.fact("result") == "temperror" and (
                not spf_domain or aligned(spf_domain, from_domain, rec.aspf == "s"))
            dkim_temp = any(sig.get("result") == "temperror" and aligned(sig.get("d", ""), from_domain, rec.adkim == "s")
                            for sig in dkim.fact("signatures", []) or [])
            if spf_temp or dkim_temp:
                facts.update(result="temperror", disposition="none")
                symbols.append(sym("DMARC_TEMPERROR", "SPF or DKIM temperror"))
                self._collect(ctx, settings, facts, rec, spf, dkim)
                return LayerFindings(facts, tuple(symbols))
            facts["result"] = "fail"
            effective = policy
            if settings.apply_pct and effective != "none" and not _sampled(ctx, rec.pct):
                effective = "quarantine" if effective == "reject" else "none"
                facts["override"] = "sampled_out"
            override = self._override(ctx, settings, from_domain)
            if override:
                facts["override"] = override
                symbols.append(sym("DMARC_ARC_OVERRIDE" if override == "trusted_forwarder" else "DMARC_LOCAL_OVERRIDE",
                                   from_domain))
                effective = "none"
            if effective == "reject":
                symbols.append(sym("DMARC_FAIL_REJECT", from_domain))
            elif effective == "quarantine":
                symbols.append(sym("DMARC_FAIL_QUARANTINE", from_domain))
            else:
                symbols.append(sym("DMARC_FAIL_NONE", from_domain))
            facts["disposition"] = self._disposition(effective, settings)
        self._collect(ctx, settings, facts, rec, spf, dkim)
        return LayerFindings(facts, tuple(symbols))

    def _override(self, ctx: MessageContext, settings: DmarcSettings, from_domain: str) -> str | None:
        if ctx.facts.get("allowlisted"):
            return "local_policy"
        dom_org = org_domain(from_domain)
        for d in settings.no_action_domains:
            d = d.lower().rstrip(".")
            if from_domain == d or from_domain.endswith("." + d) or dom_org == d:
                return "local_policy"
        if settings.arc_override:
            arc = ctx.layer("arc")
            if arc.fact("cv") == "pass" and arc.fact("trusted_sealer"):
                aar = str(arc.fact("trusted_aar") or "").lower()
                # the trusted sealer saw the message before it was changed: honour its verdict
                if re.search(r"\bdmarc=pass\b", aar) or (not re.search(r"\bdmarc=", aar)
                                                         and re.search(r"\b(dkim|spf)=pass\b", aar)):
                    return "trusted_forwarder"
        return None

    def policy_rules(self, settings: DmarcSettings) -> list[PolicyRule]:
        return policy_rules_for(settings)

    @staticmethod
    def _disposition(policy: str, settings: DmarcSettings) -> str:
        if policy == "reject":
            return {"honour": "reject", "quarantine": "quarantine", "score": "none"}[settings.reject_handling]
        if policy == "quarantine":
            return "quarantine" if settings.quarantine_handling == "honour" else "none"
        return "none"

    def _collect(self, ctx: MessageContext, settings: DmarcSettings, facts: dict[str, Any], rec: DmarcRecord,
                 spf: Any, dkim: Any) -> None:
        if not settings.collect_reports or not rec.rua or ctx.scan_mode:
            return
        line = {
            "t": int(time.time()), "policy_domain": facts["policy_domain"], "header_from": facts["from_domain"],
            "p": rec.p, "sp": rec.sp, "pct": rec.pct, "adkim": rec.adkim, "aspf": rec.aspf, "rua": list(rec.rua),
            "source_ip": ctx.conn.client_ip or "", "envelope_from": spf.fact("domain", "") or "",
            "disposition": facts.get("disposition", "none"), "override": facts.get("override"),
            "dkim_aligned": facts.get("dkim_aligned", False), "spf_aligned": facts.get("spf_aligned", False),
            "spf": {"domain": spf.fact("domain", ""), "result": spf.fact("result", "none"),
                    "scope": spf.fact("identity", "mfrom")},
            "dkim": [{"domain": s.get("d", ""), "selector": s.get("s", ""), "result": s.get("result", "")}
                     for s in (dkim.fact("signatures", []) or [])][:10],
        }
        try:
            append_report_line(line)
        except OSError as e:  # reporting must never cost a message
            ctx.add_trace("dmarc", "report-data", f"not recorded: {e}")


def report_dir() -> Path:
    return envconfig.data_dir() / "dmarc"


def append_report_line(line: dict[str, Any], day: str | None = None) -> None:
    folder = report_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = day or time.strftime("%Y-%m-%d", time.gmtime(line.get("t", time.time())))
    data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
    fd = os.open(folder / f"{name}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, data)  # one write on O_APPEND: lines from several threads/processes do not interleave
    finally:
        os.close(fd)


def policy_rules_for(settings: DmarcSettings) -> list[PolicyRule]:
    rules = []
    text = settings.reject_text.replace("{domain}", "the sender domain")
    if settings.reject_handling == "honour":
        rules.append(PolicyRule("dmarc_reject", Outcome.reject(Reply("550", "5.7.1", text), "DMARC p=reject"),
                                ("DMARC_FAIL_REJECT",)))
    elif settings.reject_handling == "quarantine":
        rules.append(PolicyRule("dmarc_reject_quarantine",
                                Outcome.quarantine(QuarantineQueue.ADMIN, "DMARC p=reject (quarantined)"),
                                ("DMARC_FAIL_REJECT",)))
    if settings.quarantine_handling == "honour":
        rules.append(PolicyRule("dmarc_quarantine", Outcome.quarantine(QuarantineQueue.USER, "DMARC p=quarantine"),
                                ("DMARC_FAIL_QUARANTINE",)))
    return rules

