"""Authentication-Results (RFC 8601) for inbound mail.

Every existing Authentication-Results header that claims our authserv-id
(``ctx.policy.authserv_id``) is forged or stale and is deleted first (RFC 8601 section 5);
then one header with the SPF, DKIM (one entry per signature), DMARC, ARC and iprev results
is inserted at the top. Deletions are emitted from the last occurrence to the first so that
each index still names the intended header when the MTA applies them in order.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from gateway_milter import layers
from gateway_milter.transforms import TransformResult
from gateway_milter.verdict import Direction, HeaderEdit

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext
    from gateway_milter.pipeline.runner import LayerResult
    from gateway_milter.transforms import TransformServices
    from gateway_milter.verdict import Outcome

HEADER = "Authentication-Results"
_TOKEN = re.compile(r"^[A-Za-z0-9.@_+=!#$%&'*/?^`{|}~-]+$")


def authserv_id_of(value: str) -> str:
    """The authserv-id of an A-R value: the first token, comments removed."""
    v = re.sub(r"\([^()]*\)", " ", value)  # RFC 5322 comments (one nesting level is enough here)
    first = v.split(";", 1)[0].strip()
    return first.split()[0].lower() if first else ""


def _val(v: Any) -> str:
    """A property value: a token as is, anything else as a quoted string (no CR/LF)."""
    s = re.sub(r"[\r\n\t]+", " ", str(v)).strip()
    if _TOKEN.match(s):
        return s
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _comment(text: str) -> str:
    t = re.sub(r"[\r\n()\\]+", " ", text).strip()
    return f" ({t[:120]})" if t else ""


def _result(ctx: MessageContext, layer_id: str) -> LayerResult | None:
    runner = ctx.runner
    if runner is None:
        return None
    done = runner.computed().get(layer_id)
    if done is not None:
        return done
    try:
        return ctx.layer(layer_id)
    except Exception:  # noqa: BLE001 - a layer that cannot run simply has no A-R entry
        return None


def results(ctx: MessageContext) -> list[str]:
    """The resinfo entries (``method=result props``) for this message."""
    out: list[str] = []
    spf = _result(ctx, "spf")
    if spf is not None and spf.facts.get("result"):
        f = spf.facts
        if f.get("identity") == "mailfrom":
            out.append(f"spf={f['result']} smtp.mailfrom={_val(ctx.mail_from.strip('<> ') or f.get('domain', ''))}")
        else:
            out.append(f"spf={f['result']} smtp.helo={_val(f.get('domain', ''))}")
        if f.get("helo_result") and f.get("identity") == "mailfrom":
            out.append(f"spf={f['helo_result']} smtp.helo={_val(f.get('helo_domain', ''))}")
    dkim = _result(ctx, "dkim")
    if dkim is not None and not dkim.facts.get("exempt") and dkim.error is None and dkim.skipped is None:
        sigs = dkim.facts.get("signatures") or []
        if not sigs:
            out.append("dkim=none")
        for s in sigs:
            props = f" header.d={_val(s['d'])}" if s.get("d") else ""
            if s.get("i"):
                props += f" header.i={_val(s['i'])}"
            if s.get("s"):
                props += f" header.s={_val(s['s'])}"
            if s.get("a"):
                props += f" header.a={_val(s['a'])}"
            if s.get("b"):
                props += f" header.b={_val(s['b'][:8])}"
            reason = _comment(s["reason"]) if s.get("reason") and s["result"] != "pass" else ""
            out.append(f"dkim={s['result']}{reason}{props}")
    dmarc = _result(ctx, "dmarc")
    if dmarc is not None and dmarc.facts.get("result"):
        f = dmarc.facts
        note = f"p={f.get('policy') or 'none'} dis={f.get('disposition', 'none')}"
        if f.get("override"):
            note += f" override={f['override']}"
        props = f" header.from={_val(f['from_domain'])}" if f.get("from_domain") else ""
        out.append(f"dmarc={f['result']}{_comment(note)}{props}")
    arc = _result(ctx, "arc")
    if arc is not None and arc.facts.get("cv") and not arc.facts.get("exempt"):
        f = arc.facts
        note = ("sealers=" + ",".join(f.get("sealers") or [])) if f.get("sealers") else ""
        out.append(f"arc={f['cv']}{_comment(note)}")
    rdns = _result(ctx, "rdns")
    if rdns is not None and rdns.facts.get("iprev") and ctx.conn.client_ip:
        host = (rdns.facts.get("ptr") or [""])[0]
        out.append(f"iprev={rdns.facts['iprev']}{_comment(host)} policy.iprev={_val(ctx.conn.client_ip)}")
    return out


def build_value(ctx: MessageContext, authserv_id: str | None = None) -> str:
    sid = authserv_id or ctx.policy.authserv_id
    entries = results(ctx)
    if not entries:
        return f"{sid}; none"
    return f"{sid};\n\t" + ";\n\t".join(entries)


AUTH_LAYERS = ("spf", "dkim", "dmarc", "arc", "rdns")


def authentication_results(ctx: MessageContext, outcome: Outcome, services: TransformServices) -> TransformResult | None:
    if ctx.direction is not Direction.INBOUND:
        return None
    ours = ctx.policy.authserv_id.lower()
    edits: list[HeaderEdit] = []
    n = 0
    forged: list[int] = []
    for name, value in ctx.headers:
        if name.lower() == HEADER.lower():
            n += 1
            if authserv_id_of(value) == ours:
                forged.append(n)
    for idx in reversed(forged):
        edits.append(HeaderEdit("delete", HEADER, "", idx))
    ctx.facts["authresults_removed"] = len(forged)
    # Forged headers for our authserv-id always go; ours is added when an authentication layer
    # is on (with none on there is nothing to report, and each header change costs a round trip).
    if any(ctx.policy.settings_for(lid, ctx.policy_domain).enabled for lid in AUTH_LAYERS if lid in layers.available()):
        edits.append(HeaderEdit("insert", HEADER, build_value(ctx)))
    return TransformResult(header_edits=edits) if edits else None
