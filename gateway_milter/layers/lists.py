"""Allow and block lists (sender, recipient, client host, client IP), global and per domain.

Symbols: ``ALLOWLIST_{IP,HOST,SENDER}``, ``BLOCKLIST_{IP,HOST,SENDER}`` (message) and
``ALLOWLIST_RECIPIENT``/``BLOCKLIST_RECIPIENT`` (per recipient). With ``allow_wins`` an allow
entry suppresses every block symbol of the message; the fact ``allowlisted`` lets spam layers
exempt the message (antivirus never honours it).
"""

from __future__ import annotations

from dataclasses import dataclass
import re
from typing import TYPE_CHECKING

from gateway_milter.auth.psl import org_domain
from gateway_milter.layers.base import action_rule, BaseSettings, check_reply, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.verdict import FailMode, Outcome, QuarantineQueue, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext, Recipient
    from gateway_milter.policy.lists import ListEntry


@dataclass(frozen=True, slots=True)
class ListsSettings(BaseSettings):
    allow_wins: bool = True
    block_action: str = "refuse"  # refuse | quarantine
    check_header_from: bool = True  # sender lists also match the From: header (at end of message)
    # a sender entry on the allow list (and a user's own) counts only for a sender whose domain
    # is vouched for: SPF pass for the envelope sender, or a valid DKIM signature of the
    # address's organisational domain (at end of message). An address alone is the sender's
    # own word: spam forging an allow-listed partner was exempt from every spam layer.
    verify_senders: bool = True
    reject_code: str = "550"
    reject_enhanced: str = "5.7.1"
    reject_text: str = "Message refused: {what} is blocked by policy"

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.block_action not in ("refuse", "quarantine"):
            raise SettingsError("block_action", f"must be refuse or quarantine, not {self.block_action!r}")
        check_reply(self.reject_code, self.reject_enhanced, self.reject_text)


ADDR_SPEC = re.compile(r"[^\s<>()\[\],;:\"\\]+@[^\s<>()\[\],;:\"\\]+")


class SenderCheck:
    """Whether something other than the sender vouches for an address's domain: SPF pass for
    the envelope sender's domain (the ``spf`` layer), or a valid DKIM signature whose domain has
    the address's organisational domain (the ``dkim`` layer, at end of message only; before, the
    message is not there). Layers that are off or failed vouch for nothing. Asked only when an
    allow entry matched a sender, each layer at most once a message (``ctx.layer``)."""

    def __init__(self, ctx: MessageContext) -> None:
        self.ctx = ctx

    def __call__(self, address: str) -> bool:
        domain = address.strip("<> ").rpartition("@")[2].lower().rstrip(".")
        if not domain or self.ctx.runner is None:  # (no layers to ask: nothing vouches)
            return False
        org = org_domain(domain) or domain
        ctx = self.ctx
        spf = ctx.layer("spf")
        if (not spf.error and spf.fact("identity") == "mailfrom" and spf.fact("result") == "pass"
                and _org(str(spf.fact("domain", ""))) == org):
            return True
        if not ctx.headers:  # before the message: DKIM cannot tell yet
            return False
        dkim = ctx.layer("dkim")
        return not dkim.error and any(_org(str(d)) == org for d in dkim.fact("pass_domains", []) or [])


def _org(domain: str) -> str:
    d = domain.lower().rstrip(".")
    return org_domain(d) or d


def recipient_allowed(ctx: MessageContext, rcpt: Recipient) -> ListEntry | None:
    """The recipient allow entry naming this recipient (``ALLOWLIST_RECIPIENT``: abuse@,
    postmaster@, whose mail is not filtered for spam), its domain's entries first."""
    return ctx.policy.lists.match_address("allow", "recipient", rcpt.plain, rcpt.domain if rcpt.is_local else None)


def message_allowlisted(ctx: MessageContext) -> bool:
    """Whether the message is allow-listed for the spam layers (the lists layer's fact
    ``allowlisted``: an allow entry of the client, its host or the vouched sender, or every
    recipient exempt), asking the lists layer when it is on."""
    from gateway_milter import layers

    if ctx.facts.get("allowlisted"):
        return True
    if "lists" in layers.available() and ctx.policy.settings_for("lists", ctx.policy_domain).enabled:
        return bool(ctx.layer("lists").fact("allowlisted"))
    return False


def recipient_exemption(ctx: MessageContext, rcpt: Recipient) -> str | None:
    """Why this recipient is exempt from the spam layers before the message (greylisting asks
    at RCPT), or None: on the recipient allow list, or its own allow entry (My Account) names
    the sender and something vouches for the sender as for every sender entry (before the
    message only SPF can: ``SenderCheck``)."""
    if recipient_allowed(ctx, rcpt):
        return "allow-listed recipient"
    if ctx.policy.lists.match_user("allow", rcpt.plain, ctx.mail_from):
        settings = ctx.policy.settings_for("lists", rcpt.domain)
        if not settings.verify_senders or SenderCheck(ctx)(ctx.mail_from):
            return "allow-listed by the recipient"
    return None


class ListsLayer(Layer[ListsSettings]):
    local = True
    id = "lists"
    stage = Stage.MAIL
    fail_mode = FailMode.TEMPFAIL
    Settings = ListsSettings
    recheck_at_eom = True
    title = "Allow and block lists"
    description = "Allow and block lists of senders, recipients, hosts and IP networks"

    def check(self, ctx: MessageContext, settings: ListsSettings) -> LayerFindings:
        lists = ctx.policy.lists
        dom = ctx.policy_domain
        # The envelope part is judged once (before DATA); the end-of-message recheck only adds
        # the header From addresses.
        key = f"lists.envelope:{dom}"
        envelope = ctx.facts.get(key)
        if envelope is None:
            ip, host, helo = ctx.conn.ip, ctx.conn.client_name, ctx.conn.helo
            env_sender = ctx.mail_from
            envelope = ctx.facts[key] = (
                lists.match_ip("allow", ip, dom),
                # allowed by a name only the client's verified one vouches for: the HELO name
                # and an unconfirmed PTR name are the client's own word (a block may match them)
                lists.match_host("allow", ctx.conn.verified_name, dom),
                lists.match_address("allow", "sender", env_sender, dom) if env_sender else None,
                lists.match_ip("block", ip, dom),
                lists.match_host("block", host, dom) or lists.match_host("block", helo, dom),
                lists.match_address("block", "sender", env_sender, dom) if env_sender else None,
            )
        allow_ip, allow_host, allow_sender, block_ip, block_host, block_sender = envelope
        verify = SenderCheck(ctx) if settings.verify_senders else None
        unverified: list[str] = []  # sender addresses an allow entry matched but nothing vouched for
        if allow_sender is not None and verify is not None and not verify(ctx.mail_from):
            unverified.append(ctx.mail_from)
            allow_sender = None
        if settings.check_header_from and ctx.headers and lists.has_sender_entries:
            # a plain scan for addr-specs: enough to match list patterns, and a tenth of the cost
            # of email.utils.getaddresses on the hot path
            header_senders = ADDR_SPEC.findall(" ".join(ctx.header_values("From")))
            for s in header_senders:
                if allow_sender is not None:
                    break
                e = lists.match_address("allow", "sender", s, dom)
                if e is not None and verify is not None and not verify(s):
                    unverified.append(s)
                else:
                    allow_sender = e
            block_sender = block_sender or next(
                (e for s in header_senders if (e := lists.match_address("block", "sender", s, dom))), None)
        # At end of message: when every recipient is on the recipient allow list (abuse@,
        # postmaster@), allow-listed the sender themselves or switched anti-spam off, the message
        # is exempt from the spam layers (never from antivirus). A user's own sender entry is
        # the sender's claim: it needs vouching, as a sender entry does.
        user_exempt = False
        if ctx.headers and ctx.recipients:
            claims = False  # some recipient is exempt by its own sender entry alone
            user_exempt = True
            for r in ctx.recipients:
                if r.plain.lower() in ctx.policy.antispam_disabled or recipient_allowed(ctx, r):
                    continue
                if not lists.match_user("allow", r.plain, ctx.mail_from):
                    user_exempt = False
                    break
                claims = True
            if user_exempt and claims and verify is not None and not verify(ctx.mail_from):
                unverified.append(ctx.mail_from)
                user_exempt = False
        if user_exempt:
            ctx.facts["allowlisted"] = True
        allow = {"ALLOWLIST_IP": allow_ip, "ALLOWLIST_HOST": allow_host, "ALLOWLIST_SENDER": allow_sender}
        block = {"BLOCKLIST_IP": block_ip, "BLOCKLIST_HOST": block_host, "BLOCKLIST_SENDER": block_sender}
        allowed = {k: e for k, e in allow.items() if e}
        blocked = {k: e for k, e in block.items() if e}
        symbols = [self.symbol(k, 0.0, e.value) for k, e in allowed.items()]
        if unverified and not allowed:
            symbols.append(self.symbol("ALLOWLIST_SENDER_UNVERIFIED", 0.0,
                                       ", ".join(dict.fromkeys(a.strip("<> ").lower() for a in unverified))[:200]))
        overridden = bool(allowed) and settings.allow_wins and bool(blocked)
        if not overridden:
            symbols += [self.symbol(k, 0.0, e.value) for k, e in blocked.items()]
        if allowed:
            ctx.facts["allowlisted"] = True
        return LayerFindings(
            facts={
                "allowlisted": bool(allowed) or user_exempt,
                "recipients_exempt": user_exempt,
                "allow_matches": {k: e.value for k, e in allowed.items()},
                "block_matches": {k: e.value for k, e in blocked.items()},
                "block_overridden": overridden,
                "allow_unverified": bool(unverified) and not allowed,
            },
            symbols=tuple(symbols),
        )

    def check_recipient(self, ctx: MessageContext, rcpt: Recipient, settings: ListsSettings) -> LayerFindings:
        lists = ctx.policy.lists
        a = recipient_allowed(ctx, rcpt)
        # a recipient is judged by its address without a BATV tag (prvs=TAG=closed@example.com is
        # delivered to closed@example.com: a tag, forged or not, escaped the block list)
        plain = rcpt.plain
        b = lists.match_address("block", "recipient", plain, rcpt.domain if rcpt.is_local else None)
        symbols = []
        if a:
            symbols.append(self.symbol("ALLOWLIST_RECIPIENT", 0.0, a.value))
        if b and not (a and settings.allow_wins):
            symbols.append(self.symbol("BLOCKLIST_RECIPIENT", 0.0, b.value))
        # the recipient's own lists (My Account) judge the sender for this recipient only
        ua = lists.match_user("allow", plain, ctx.mail_from)
        ub = lists.match_user("block", plain, ctx.mail_from)
        if ua:
            symbols.append(self.symbol("USER_ALLOWLIST_SENDER", 0.0, ua.value))
        elif ub:
            symbols.append(self.symbol("USER_BLOCKLIST_SENDER", 0.0, ub.value))
        return LayerFindings({"recipient": rcpt.address}, tuple(symbols))

    def policy_rules(self, settings: ListsSettings) -> list[PolicyRule]:
        rules = []
        for sym, what in (("BLOCKLIST_IP", "client address"), ("BLOCKLIST_HOST", "client host"),
                          ("BLOCKLIST_SENDER", "sender"), ("BLOCKLIST_RECIPIENT", "recipient")):
            reply = Reply(settings.reject_code, settings.reject_enhanced, settings.reject_text.replace("{what}", what))
            rule = action_rule(sym.lower(), sym, settings.block_action, reply, f"{what} blocklisted",
                               QuarantineQueue.USER, recipient=sym == "BLOCKLIST_RECIPIENT")
            if rule is not None:
                rules.append(rule)
        user_reply = Reply(settings.reject_code, settings.reject_enhanced, "Message refused: the recipient blocks this sender")
        rules.append(PolicyRule("user_blocklist_sender", Outcome.reject(user_reply, "sender blocked by the recipient"),
                                ("USER_BLOCKLIST_SENDER",), recipient=True))
        return rules
