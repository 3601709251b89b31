"""ARC chain validation (RFC 8617) with dkimpy's ``arc_verify`` over the gateway resolver.

The chain validation status (``cv``) is ``pass``, ``fail``, ``none`` or ``temperror`` (a key
lookup timed out: never a pass). When the chain passes and one of its sealers is listed in
``trusted_sealers``, the layer reports ``ARC_TRUSTED`` and the facts of that sealer's
ARC-Authentication-Results; the DMARC layer may then override a DMARC failure for the
forwarded message (RFC 7489 section 6.7 "local policy", RFC 8617 section 7.2).

Symbols: ``ARC_PASS``, ``ARC_FAIL``, ``ARC_NONE``, ``ARC_TEMPERROR``, ``ARC_TRUSTED``.
Facts: ``cv``, ``reason``, ``instances``, ``sealers`` (d= of each ARC-Seal, i=1 first),
``trusted_sealer``, ``trusted_aar`` (that instance's ARC-Authentication-Results text).

Sealing of outbound or forwarded mail (``seal``, ``seal_domain``, ``seal_selector``) is
done by the ``dkimsign`` transform, after every other change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import dkim

from gateway_milter.auth.dnsadapt import DKIMPY_VERIFY_LOG, DnsTempError, dkim_dnsfunc
from gateway_milter.auth.exemptions import action_rule, check_action, exemption, score_of
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.net.resolver import DnsBudget, Resolver, get_resolver
from gateway_milter.verdict import FailMode, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

DEFAULT_SCORES: dict[str, float] = {"ARC_PASS": 0.0, "ARC_FAIL": 0.5, "ARC_NONE": 0.0, "ARC_TEMPERROR": 0.0,
                                    "ARC_TRUSTED": -1.0}
DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")


@dataclass(frozen=True, slots=True)
class ArcSettings(BaseSettings):
    trusted_sealers: tuple[str, ...] = ()
    fail_action: str = "score"
    min_key_bits: int = 1024
    max_instances: int = 50  # RFC 8617 section 4.2.1: i= is 1..50
    scores: dict[str, float] = field(default_factory=dict)
    # sealing (done by the dkimsign transform)
    seal: bool = False
    seal_domain: str = ""
    seal_selector: str = ""
    seal_directions: tuple[str, ...] = ("inbound",)  # forwarded mail is inbound at our gateway

    # the key a seal is made with: one domain's override could seal as another tenant's domain
    global_only_fields: ClassVar[frozenset[str]] = frozenset({"seal_domain", "seal_selector"})

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        check_action("fail_action", self.fail_action)
        for i, d in enumerate(self.trusted_sealers):
            if not DOMAIN_RE.match(d.lower()):
                raise SettingsError(f"trusted_sealers[{i}]", f"{d!r} is not a domain name")
        if self.seal and not (self.seal_domain and self.seal_selector):
            raise SettingsError("seal", "sealing needs seal_domain and seal_selector")
        for d in self.seal_directions:
            if d not in ("inbound", "outbound", "local"):
                raise SettingsError("seal_directions", f"unknown direction {d!r}")


@dataclass(frozen=True, slots=True)
class ArcResult:
    cv: str
    reason: str
    sealers: tuple[str, ...]
    aars: tuple[str, ...]  # ARC-Authentication-Results per instance, i=1 first


def _tags(value: bytes) -> dict[bytes, bytes]:
    try:
        return dkim.util.parse_tag_value(value)  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - malformed seals are reported by arc_verify itself
        return {}


def _instance(value: bytes) -> int:
    m = re.search(rb"(?:^|;)\s*i\s*=\s*(\d+)", value)
    return int(m.group(1)) if m else 0


def verify_chain(raw: bytes, *, resolver: Resolver | None = None, budget: DnsBudget | None = None,
                 min_key_bits: int = 1024) -> ArcResult:
    res = resolver or get_resolver()
    try:
        cv, _results, reason = dkim.arc_verify(raw, logger=DKIMPY_VERIFY_LOG, dnsfunc=dkim_dnsfunc(res, budget),
                                              minkey=min_key_bits)
    except DnsTempError as e:
        cv, reason = b"temperror", str(e)
    except Exception as e:  # noqa: BLE001 - dkimpy may raise on hostile input: a failed chain
        cv, reason = dkim.CV_Fail, f"{type(e).__name__}: {e}"
    text = {dkim.CV_Pass: "pass", dkim.CV_Fail: "fail", dkim.CV_None: "none", None: "fail",
            b"temperror": "temperror"}.get(cv, "fail")
    sealers: dict[int, str] = {}
    aars: dict[int, str] = {}
    try:
        headers = dkim.rfc822_parse(raw)[0]
    except Exception:  # noqa: BLE001
        headers = []
    for name, value in headers:
        lname = name.lower()
        if lname == b"arc-seal":
            t = _tags(value)
            sealers[_instance(value)] = t.get(b"d", b"").decode("ascii", "replace").strip().lower()
        elif lname == b"arc-authentication-results":
            aars[_instance(value)] = re.sub(r"\s+", " ", value.decode("utf-8", "replace")).strip()
    order = sorted(sealers)
    return ArcResult(text, str(reason)[:200], tuple(sealers[i] for i in order),
                     tuple(aars.get(i, "") for i in order))


class ArcLayer(Layer[ArcSettings]):
    id = "arc"
    stage = Stage.EOM
    fail_mode = FailMode.UNKNOWN
    Settings = ArcSettings
    budget_s = 15.0
    title = "ARC"
    description = "ARC chain validation (RFC 8617) and trusted ARC sealers"

    def check(self, ctx: MessageContext, settings: ArcSettings) -> LayerFindings:
        why = exemption(ctx, allowlist=False)
        if why:
            return LayerFindings({"exempt": why, "cv": "none"})
        r = verify_chain(ctx.raw_bytes(), budget=self.dns_budget(ctx), min_key_bits=settings.min_key_bits)
        return self.findings(r, settings)

    def findings(self, r: ArcResult, settings: ArcSettings) -> LayerFindings:
        def sym(name: str, detail: str = "") -> Any:
            return self.symbol(name, score_of(settings.scores, DEFAULT_SCORES, name), detail)

        facts: dict[str, Any] = {"cv": r.cv, "reason": r.reason, "instances": len(r.sealers),
                                 "sealers": list(r.sealers), "trusted_sealer": None, "trusted_aar": ""}
        symbols = [sym(f"ARC_{r.cv.upper()}", r.reason if r.cv != "pass" else ",".join(r.sealers))]
        if r.cv == "pass":
            trusted = {d.lower().rstrip(".") for d in settings.trusted_sealers}
            # the most recent trusted sealer speaks for the hops before it
            for i in range(len(r.sealers) - 1, -1, -1):
                if r.sealers[i] in trusted:
                    facts["trusted_sealer"] = r.sealers[i]
                    facts["trusted_aar"] = r.aars[i]
                    symbols.append(sym("ARC_TRUSTED", r.sealers[i]))
                    break
        return LayerFindings(facts, tuple(symbols))

    def policy_rules(self, settings: ArcSettings) -> list[PolicyRule]:
        rule = action_rule("arc_fail", "ARC_FAIL", settings.fail_action,
                           Reply("550", "5.7.29", "ARC validation failed"), "ARC chain failed")
        return [rule] if rule else []
