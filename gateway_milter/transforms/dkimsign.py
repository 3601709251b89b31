"""DKIM signing (RFC 6376) of outbound mail and ARC sealing (RFC 8617), the last transform.

It runs after every other transform so that it signs the final body and headers (a
disclaimer added afterwards would break the signature); the transaction driver hands later
transforms the message as changed by earlier ones. The signing domain is the From header's
domain (so the signature aligns for DMARC); its ``dkim`` settings decide whether to sign
(``sign``), with which selector (``selector`` or the key store's active one) and algorithm.
A domain configured to sign without a usable key raises: the message is tempfailed rather
than sent unsigned under a strict DMARC policy.

ARC sealing (``arc`` settings ``seal``, ``seal_domain``, ``seal_selector``) adds
ARC-Authentication-Results, ARC-Message-Signature and ARC-Seal for the directions in
``seal_directions``, using our Authentication-Results as the AAR payload.
"""

from __future__ import annotations

from gateway_milter.mime.headers import addresses
from typing import TYPE_CHECKING

import dkim

from gateway_milter.auth.dnsadapt import DKIMPY_VERIFY_LOG
from gateway_milter.auth.keystore import KeyStoreError, get_keystore
from gateway_milter.transforms import TransformResult
from gateway_milter.verdict import Direction, HeaderEdit

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext
    from gateway_milter.transforms import TransformServices
    from gateway_milter.verdict import Outcome


class SigningError(RuntimeError):
    pass


def from_domain(ctx: MessageContext) -> str:
    addrs = [a for _, a in addresses(ctx.header_values("From")) if "@" in a]
    return addrs[0].rpartition("@")[2].lower().rstrip(".") if len(addrs) == 1 else ""


def _split(header: bytes) -> tuple[str, str]:
    name, _, value = header.partition(b":")
    v = value.decode("ascii", "replace").strip().replace("\r\n", "\n")
    return name.decode("ascii").strip(), v


def sign_message(raw: bytes, domain: str, selector: str, key: bytes, algorithm: str,
                 include_headers: list[str], canonicalization: str = "relaxed/relaxed",
                 oversign: list[str] | None = None, length: bool = False) -> tuple[str, str]:
    """The DKIM-Signature header (name, value) for ``raw``. ``oversign`` names are listed once
    more so that nobody can add such a header later without breaking the signature."""
    c = canonicalization.split("/")
    canon = (c[0].encode(), (c[1] if len(c) > 1 else "simple").encode())
    present = {n.lower() for n in _header_names(raw)}
    heads = [h.encode() for h in include_headers if h.lower() in present or h.lower() == "from"]
    heads += [h.encode() for h in (oversign or [])]
    sig = dkim.sign(raw, selector.encode(), domain.encode(), key, canonicalize=canon,
                    signature_algorithm=algorithm.encode(), include_headers=heads, length=length)
    return _split(sig)


def _header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    out = []
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        out.append(line.split(b":", 1)[0].decode("ascii", "replace").strip())
    return out


def arc_seal_headers(raw: bytes, *, domain: str, selector: str, key: bytes, authserv_id: str,
                     include_headers: list[str] | None = None, timestamp: int | None = None,
                     standardize: bool = False) -> list[bytes]:
    """The three ARC header lines (AAR, AMS, AS) for the next instance of ``raw``.

    ``raw`` must carry our Authentication-Results (authserv-id ``authserv_id``), whose
    results become the AAR payload; the chain status comes from its ``arc=`` entry."""
    heads = [h.encode() for h in include_headers] if include_headers else None
    a = dkim.ARC(raw, logger=DKIMPY_VERIFY_LOG, signature_algorithm=b"rsa-sha256")  # (reads the chain it extends)
    if heads is None:
        heads = a.default_sign_headers()
    return list(a.sign(selector.encode(), domain.encode(), key, authserv_id.encode(), include_headers=heads,
                       timestamp=timestamp, standardize=standardize))


def _with_header(raw: bytes, name: str, value: str) -> bytes:
    return f"{name}: {value}".replace("\n\t", "\r\n\t").encode("utf-8", "surrogateescape") + b"\r\n" + raw


def dkim_sign(ctx: MessageContext, outcome: Outcome, services: TransformServices) -> TransformResult | None:
    edits: list[HeaderEdit] = []
    raw: bytes | None = None  # the message is joined only when something is signed
    # ARC seal first (sealing covers the message as it arrived plus our A-R), then DKIM.
    arc = ctx.policy.settings_for("arc", ctx.policy_domain)
    if arc.enabled and arc.seal and ctx.direction.value in arc.seal_directions:
        key = get_keystore().signing_key(arc.seal_domain, arc.seal_selector)
        if key is None or key.algorithm != "rsa-sha256":
            raise SigningError(f"no RSA key for ARC sealing as {arc.seal_selector}._domainkey.{arc.seal_domain}")
        from gateway_milter.transforms.authresults import authserv_id_of, build_value

        # The context shows the message as it will be delivered (transforms run in order), so
        # our Authentication-Results is already in it when that transform ran.
        raw = ctx.raw_bytes()
        ours = ctx.policy.authserv_id.lower()
        has_ar = any(n.lower() == "authentication-results" and authserv_id_of(v) == ours for n, v in ctx.headers)
        base = raw if has_ar else _with_header(raw, "Authentication-Results", build_value(ctx))
        sealed = arc_seal_headers(base, domain=arc.seal_domain,
                                  selector=arc.seal_selector, key=key.private, authserv_id=ctx.policy.authserv_id)
        arc_edits = []
        # each insert prepends: apply AAR, AMS, AS in that order so that AS ends up on top
        rank = {b"arc-authentication-results": 0, b"arc-message-signature": 1, b"arc-seal": 2}
        sealed.sort(key=lambda h: rank.get(h.split(b":", 1)[0].strip().lower(), 3))
        for h in sealed:
            name, value = _split(h)
            arc_edits.append(HeaderEdit("insert", name, value))
            raw = h.rstrip(b"\r\n") + b"\r\n" + raw
        edits.extend(arc_edits)
        ctx.facts["arc_sealed"] = arc.seal_domain
    if ctx.direction is Direction.OUTBOUND or ctx.direction is Direction.LOCAL:
        domain = from_domain(ctx)
        if domain:
            settings = ctx.policy.settings_for("dkim", domain)
            if settings.enabled and settings.sign:
                try:
                    key = get_keystore().signing_key(domain, settings.selector or None)
                except KeyStoreError as e:
                    raise SigningError(str(e)) from None
                if key is None:
                    raise SigningError(f"DKIM signing is on for {domain} but it has no key")
                algo = settings.algorithm if key.algorithm == settings.algorithm else key.algorithm
                name, value = sign_message(ctx.raw_bytes() if raw is None else raw, domain, key.selector, key.private, algo,
                                           list(settings.sign_headers), settings.canonicalization,
                                           list(settings.oversign))
                edits.append(HeaderEdit("insert", name, value))
                ctx.facts["dkim_signed"] = f"{key.selector}._domainkey.{domain}"
    return TransformResult(header_edits=edits) if edits else None
