"""Vouch By Reference (RFC 5518): a sender names certifiers in ``VBR-Info``
(``md=example.com; mc=transaction; mv=certifier.example:other.example``); when the ``md``
domain is authenticated (a passing DKIM signature, RFC 5518 section 3) and a certifier we
trust publishes ``example.com._vouch.certifier.example`` TXT containing ``all`` or the
``mc`` type, the message is vouched for (symbol ``VBR_CERTIFIED``, negative score).
DNS failures mean "unknown".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, SettingsError
from gateway_milter.verdict import FailMode, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext


@dataclass(frozen=True, slots=True)
class VbrSettings(BaseSettings):
    trusted_certifiers: tuple[str, ...] = ()
    score: float = -2.0
    max_certifiers: int = 5

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.score > 0:
            raise SettingsError("score", "a certification must lower the score (<= 0)")
        if not 1 <= self.max_certifiers <= MAX_CERTIFIERS:
            raise SettingsError("max_certifiers", f"must be 1..{MAX_CERTIFIERS} (one DNS query each)")
        for i, c in enumerate(self.trusted_certifiers):
            if not _DOMAIN.match(c.lower().rstrip(".")):
                raise SettingsError(f"trusted_certifiers[{i}]", f"{c!r} is not a domain name")


MAX_CERTIFIERS = 20
MAX_FIELDS = 5  # VBR-Info fields read per message
_STATES = ("malformed", "md not authenticated", "not certified", "unknown")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def parse_vbr_info(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.split(";"):
        k, _, v = part.partition("=")
        k = k.strip().lower()
        if k in ("md", "mc", "mv") and v.strip():
            v = re.sub(r"\s+", "", v).lower()
            # a domain written with its root's dot names the same domain (md=example.com.)
            out[k] = ":".join(d.rstrip(".") for d in v.split(":")) if k != "mc" else v
    return out


class VbrLayer(Layer[VbrSettings]):
    id = "vbr"
    stage = Stage.EOM
    fail_mode = FailMode.UNKNOWN
    Settings = VbrSettings
    title = "Vouch By Reference (VBR)"
    description = "Vouch By Reference certification (RFC 5518)"

    def check(self, ctx: MessageContext, settings: VbrSettings) -> LayerFindings:
        values = ctx.header_values("VBR-Info")[:MAX_FIELDS]
        if not values or not settings.trusted_certifiers:
            return LayerFindings()
        from gateway_milter import layers

        passed = set(ctx.layer("dkim").fact("pass_domains") or []) if "dkim" in layers.available() else set()
        trusted = {c.lower().rstrip(".") for c in settings.trusted_certifiers}
        from gateway_milter.net.resolver import get_resolver

        res, budget = get_resolver(), self.dns_budget(ctx)
        # the fact says how far the best field got (malformed < md not authenticated < not
        # certified < unknown: a DNS failure is no verdict), md the domain it named
        state, md_seen, asked = 0, "", 0
        # each field one domain's claim (an author's domain and its sending service may both
        # name certifiers): the first that a trusted certifier vouches for counts
        for value in values:
            info = parse_vbr_info(value)
            md, mc, mv = info.get("md", ""), info.get("mc", ""), info.get("mv", "")
            if not md or not mv:
                continue
            rank = 2 if md in passed else 1
            if rank > state:
                state, md_seen = rank, md
            if rank == 1:  # md not authenticated: its certifiers vouch for nothing here
                continue
            # max_certifiers bounds the trusted entries asked, not the list: a trusted certifier
            # named after untrusted ones is still asked
            for cert in mv.split(":"):
                if asked >= settings.max_certifiers:
                    break
                if cert not in trusted:
                    continue
                asked += 1
                ans = res.query(f"{md}._vouch.{cert}", "TXT", budget)
                if ans.temporary:
                    state = 3
                if ans.status != "ok":
                    continue
                for txt in ans.records:
                    types = {t.strip().lower() for t in str(txt).split()}
                    if "all" in types or (mc and mc in types):
                        return LayerFindings({"vbr": "certified", "md": md, "certifier": cert},
                                             (self.symbol("VBR_CERTIFIED", settings.score, f"{md} by {cert}"),))
        fact = _STATES[state]
        return LayerFindings({"vbr": fact, "md": md_seen} if md_seen else {"vbr": fact})
