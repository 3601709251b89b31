"""DKIM verification (RFC 6376, RSA and Ed25519 per RFC 8463) of every signature, with dkimpy.

Each ``DKIM-Signature`` (up to ``max_signatures``) gets its own RFC 8601 result: ``pass``,
``fail`` (bad signature or body hash), ``permerror`` (malformed, no key, key too small),
``temperror`` (DNS timeout/SERVFAIL: never a pass), or ``policy`` for a signature whose
``l=`` leaves part of the body unsigned (docs/decisions/0022-dkim-length-tag.md). Key
lookups go through the gateway resolver and the message's DNS budget.

Symbols: ``DKIM_VALID`` (a signature passed), ``DKIM_INVALID`` (signatures, none passed),
``DKIM_NONE`` (unsigned), ``DKIM_TEMPERROR``, ``DKIM_PARTIAL_BODY`` (an ``l=`` signature
does not cover the body). Facts: ``signatures`` (list of dicts: d, s, i, a, l, result,
reason, b), ``pass_domains``, ``result`` (best overall result).

The layer's settings also hold the per-domain signing configuration used by the
``dkimsign`` transform (``sign``, ``selector``, ``algorithm``, ``sign_headers``).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dkim
import dkim.util
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError

from gateway_milter.auth import dkimspeed
from gateway_milter.auth.dnsadapt import DKIMPY_VERIFY_LOG, DnsTempError, dkim_dnsfunc
from gateway_milter.auth.exemptions import action_rule, check_action, exemption, score_of
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.net.resolver import DnsBudget, Resolver, budget_for, get_resolver
from gateway_milter.verdict import FailMode, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

dkimspeed.install()

DEFAULT_SCORES: dict[str, float] = {
    "DKIM_VALID": -0.5, "DKIM_INVALID": 1.0, "DKIM_NONE": 0.0, "DKIM_TEMPERROR": 0.0,
    "DKIM_PARTIAL_BODY": 0.5,
}
RESULT_RANK = {"pass": 0, "policy": 1, "fail": 2, "permerror": 3, "temperror": 4, "none": 5}
DEFAULT_SIGN_HEADERS = ("from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
                        "mime-version", "content-type", "content-transfer-encoding", "content-id",
                        "content-description", "resent-date", "resent-from", "resent-sender",
                        "resent-to", "resent-cc", "resent-message-id", "in-reply-to", "references",
                        "list-id", "list-help", "list-unsubscribe", "list-subscribe", "list-post",
                        "list-owner", "list-archive")
SELECTOR_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}(\.[a-z0-9][a-z0-9_-]{0,62})*$")


@dataclass(frozen=True, slots=True)
class DkimSettings(BaseSettings):
    # verification
    invalid_action: str = "score"  # score | refuse | quarantine | tempfail
    min_key_bits: int = 1024
    max_signatures: int = 5
    length_tag: str = "strict"  # strict: l= short of the body gives "policy"; accept: pass
    exempt_authenticated: bool = True
    exempt_trusted: bool = True
    scores: dict[str, float] = field(default_factory=dict)
    # signing (outbound, per domain)
    sign: bool = False
    selector: str = ""  # empty: the key store's active selector for the domain
    algorithm: str = "rsa-sha256"  # rsa-sha256 | ed25519-sha256
    canonicalization: str = "relaxed/relaxed"
    sign_headers: tuple[str, ...] = DEFAULT_SIGN_HEADERS
    oversign: tuple[str, ...] = ("from", "subject", "date", "to", "cc")

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        check_action("invalid_action", self.invalid_action)
        if self.length_tag not in ("strict", "accept"):
            raise SettingsError("length_tag", f"must be strict or accept, not {self.length_tag!r}")
        if self.min_key_bits not in (512, 768, 1024, 2048):
            raise SettingsError("min_key_bits", "must be 512, 768, 1024 or 2048")
        if not 1 <= self.max_signatures <= 20:
            raise SettingsError("max_signatures", "must be between 1 and 20")
        if self.algorithm not in ("rsa-sha256", "ed25519-sha256"):
            raise SettingsError("algorithm", "must be rsa-sha256 or ed25519-sha256")
        if self.selector and not SELECTOR_RE.match(self.selector):
            raise SettingsError("selector", f"{self.selector!r} is not a valid selector")
        try:
            CanonicalizationPolicy.from_c_value(self.canonicalization.encode())
        except InvalidCanonicalizationPolicyError:
            raise SettingsError("canonicalization", "must be simple|relaxed[/simple|relaxed]") from None
        if "from" not in [h.lower() for h in self.sign_headers]:
            raise SettingsError("sign_headers", "must include from (RFC 6376 section 5.4)")


@dataclass(frozen=True, slots=True)
class SignatureResult:
    domain: str
    selector: str
    identity: str
    algorithm: str
    length: int | None
    result: str
    reason: str
    b: str

    def as_fact(self) -> dict[str, Any]:
        return {"d": self.domain, "s": self.selector, "i": self.identity, "a": self.algorithm,
                "l": self.length, "result": self.result, "reason": self.reason, "b": self.b}


def _text(v: bytes | None) -> str:
    return v.decode("ascii", "replace").strip() if v else ""


_D_TAG = re.compile(rb"(?:^|;)\s*d\s*=\s*([^;\s]+)")
_S_TAG = re.compile(rb"(?:^|;)\s*s\s*=\s*([^;\s]+)")


def key_name(signature: bytes) -> str | None:
    """The DNS name of a DKIM-Signature's key (``s._domainkey.d``), or None without both tags."""
    m_d, m_s = _D_TAG.search(signature), _S_TAG.search(signature)
    if not (m_d and m_s):
        return None
    return f"{m_s.group(1).decode('ascii', 'replace')}._domainkey.{m_d.group(1).decode('ascii', 'replace')}"


def verify_all(raw: bytes, *, resolver: Resolver | None = None, budget: DnsBudget | None = None,
               min_key_bits: int = 1024, max_signatures: int = 5, length_tag: str = "strict",
               timeout: float = 5.0) -> list[SignatureResult]:
    """Verify each DKIM-Signature of ``raw`` (the message as received)."""
    res = resolver or get_resolver()
    base_fn = dkim_dnsfunc(res, budget)
    missing: set[str] = set()
    keys: dict[str, bytes] = {}

    def dnsfunc(name: bytes | str, timeout: float = 5) -> bytes | None:
        qname = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        txt = base_fn(name, timeout)
        if not txt:
            missing.add(qname)
            return None
        keys[qname.rstrip(".").lower()] = txt
        return txt

    try:
        d = dkim.DKIM(raw, logger=DKIMPY_VERIFY_LOG, minkey=min_key_bits, timeout=timeout)
    except dkim.DKIMException as e:
        return [SignatureResult("", "", "", "", None, "permerror", f"unparsable message: {e}", "")]
    sig_headers = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
    # start every key lookup now, concurrently (the layer's prefetch started them at end of
    # message already); verification below finds them cached or in flight
    for raw_sig in sig_headers[:max_signatures]:
        name = key_name(raw_sig)
        if name:
            res.prefetch(name, "TXT", budget)
    out: list[SignatureResult] = []
    for idx, raw_sig in enumerate(sig_headers[:max_signatures]):
        try:
            tags = dkim.util.parse_tag_value(raw_sig)
        except dkim.util.InvalidTagValueList:
            tags = {}
        sd, ss = _text(tags.get(b"d")).lower(), _text(tags.get(b"s"))
        b_tag = re.sub(r"\s+", "", _text(tags.get(b"b")))[:16]
        length = int(tags[b"l"]) if tags.get(b"l", b"").isdigit() else None
        info = (sd, ss, _text(tags.get(b"i")), _text(tags.get(b"a")), length)
        missing.clear()
        try:
            ok = d.verify(idx, dnsfunc=dnsfunc)
        except DnsTempError as e:
            out.append(SignatureResult(*info, "temperror", str(e), b_tag))
            continue
        except dkim.ValidationError as e:
            reason = str(e)
            # a body hash mismatch is a failed check; a broken or expired signature is permerror
            result = "fail" if "body hash" in reason else "permerror"
            out.append(SignatureResult(*info, result, reason[:200], b_tag))
            continue
        except dkim.DKIMException as e:
            out.append(SignatureResult(*info, "permerror", str(e)[:200], b_tag))
            continue
        except Exception as e:  # noqa: BLE001 - hostile input must not escape as "no result"
            out.append(SignatureResult(*info, "permerror", f"{type(e).__name__}: {e}"[:200], b_tag))
            continue
        problem = _key_problem(keys.get(f"{ss}._domainkey.{sd}".lower()), tags)
        if problem:
            out.append(SignatureResult(*info, "permerror", problem, b_tag))
            continue
        if not ok:
            if missing:
                out.append(SignatureResult(*info, "permerror", "no key for signature", b_tag))
                continue
            # dkimpy also answers False for an unusable key record: that is permerror, not fail
            key = keys.get(f"{ss}._domainkey.{sd}".lower())
            try:
                if key is not None:
                    dkim.evaluate_pk(b"key", key)
            except (dkim.DKIMException, ValueError, TypeError, binascii.Error) as e:
                out.append(SignatureResult(*info, "permerror", f"unusable key: {e}"[:200], b_tag))
                continue
            out.append(SignatureResult(*info, "fail", "signature did not verify", b_tag))
            continue
        if length is not None:
            try:
                policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
                body_len = len(policy.canonicalize_body(d.body))
            except InvalidCanonicalizationPolicyError:
                body_len = length
            if body_len > length and length_tag == "strict":
                out.append(SignatureResult(*info, "policy", f"l={length} leaves {body_len - length} body bytes unsigned",
                                           b_tag))
                continue
            if body_len > length:
                out.append(SignatureResult(*info, "pass", f"l={length}: {body_len - length} body bytes unsigned", b_tag))
                continue
        out.append(SignatureResult(*info, "pass", "", b_tag))
    return out


def _key_problem(key: bytes | None, sig: dict[bytes, bytes]) -> str:
    """Key-record rules dkimpy does not enforce (RFC 6376 section 3.6.1, RFC 8463)."""
    if not key:
        return ""
    try:
        tags = dkim.util.parse_tag_value(key)
    except dkim.util.InvalidTagValueList:
        return "unparsable key record"
    flags = [f.strip() for f in tags.get(b"t", b"").split(b":")]
    if b"s" in flags:
        ident = sig.get(b"i", b"")
        idom = ident.rpartition(b"@")[2].lower()
        if ident and idom != sig.get(b"d", b"").lower():
            return "key t=s forbids an i= subdomain of d="
    if tags.get(b"k", b"rsa").strip().lower() == b"ed25519":
        try:
            raw = base64.b64decode(re.sub(rb"\s+", b"", tags.get(b"p", b"")), validate=True)
        except (ValueError, binascii.Error):
            return "bad ed25519 key encoding"
        if raw and len(raw) != 32:
            return f"ed25519 key must be 32 bytes, not {len(raw)}"
    return ""


class DkimLayer(Layer[DkimSettings]):
    id = "dkim"
    stage = Stage.EOM
    fail_mode = FailMode.UNKNOWN
    Settings = DkimSettings
    budget_s = 15.0
    title = "DKIM"
    description = "DKIM signature verification (RSA and Ed25519), per signature"
    prefetch_at_eom = True

    def prefetch(self, ctx: MessageContext, settings: DkimSettings) -> None:
        """When end of message starts (``prefetch_at_eom``: the headers are known): start
        the key lookups of the signatures ``check`` verifies, so that the keys come while the
        other layers compute (antivirus, Bayes, the rules) instead of when the policy asks."""
        if exemption(ctx, allowlist=False, authenticated=settings.exempt_authenticated,
                     trusted=settings.exempt_trusted):
            return
        sigs = [v for n, v in ctx.headers if n.lower() == "dkim-signature"][:settings.max_signatures]
        if not sigs:
            return
        res, budget = get_resolver(), budget_for(ctx)
        for v in sigs:
            # the bytes verification reads (a value that is not ASCII would name another key)
            name = key_name(v.encode("ascii", "replace")) if v.isascii() else None
            if name:
                res.prefetch(name, "TXT", budget)

    def check(self, ctx: MessageContext, settings: DkimSettings) -> LayerFindings:
        why = exemption(ctx, allowlist=False, authenticated=settings.exempt_authenticated,
                        trusted=settings.exempt_trusted)
        if why:
            return LayerFindings({"exempt": why, "signatures": [], "result": "none", "pass_domains": []})
        timeout = ctx.runner.remaining(5.0) if ctx.runner is not None else 5.0
        sigs = verify_all(ctx.raw_bytes(), budget=self.dns_budget(ctx), min_key_bits=settings.min_key_bits,
                          max_signatures=settings.max_signatures, length_tag=settings.length_tag,
                          timeout=max(0.1, timeout))
        return self.findings(sigs, settings)

    def findings(self, sigs: list[SignatureResult], settings: DkimSettings) -> LayerFindings:
        def sym(name: str, detail: str = "") -> Any:
            return self.symbol(name, score_of(settings.scores, DEFAULT_SCORES, name), detail)

        results = [s.result for s in sigs]
        passed = sorted({s.domain for s in sigs if s.result == "pass"})
        symbols = []
        if not sigs:
            symbols.append(sym("DKIM_NONE"))
        elif passed:
            symbols.append(sym("DKIM_VALID", ",".join(passed)))
        elif "temperror" in results:
            symbols.append(sym("DKIM_TEMPERROR"))
        else:
            symbols.append(sym("DKIM_INVALID", ",".join(sorted({s.domain for s in sigs}))))
        if "policy" in results or any(s.length is not None and s.reason for s in sigs if s.result == "pass"):
            symbols.append(sym("DKIM_PARTIAL_BODY"))
        best = min(results, key=lambda r: RESULT_RANK[r]) if results else "none"
        return LayerFindings({"signatures": [s.as_fact() for s in sigs], "pass_domains": passed, "result": best},
                             tuple(symbols))

    def policy_rules(self, settings: DkimSettings) -> list[PolicyRule]:
        rule = action_rule("dkim_invalid", "DKIM_INVALID", settings.invalid_action,
                           Reply("550", "5.7.20", "DKIM signature verification failed"), "DKIM invalid")
        return [rule] if rule else []
