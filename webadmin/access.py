"""The one access layer: every protected read by pages, the REST API and Celery tasks goes
through these functions (zulip's ``access_*`` pattern).

Rules (docs/ui.md, "Roles"):
- global administrator: everything;
- domain administrator: the domains assigned to them; messages with a recipient in one of
  them, or sent from one of them; settings, lists and scripts of those domains;
- quarantine administrator: the user quarantine and the message log of their domains (read
  and quarantine actions only, no settings);
- user: their own mailbox and aliases, as far as their user options allow.

A missing object and a forbidden object look the same to the caller (``Http404``): an id
never tells a tenant that another tenant's message exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from quarantine.models import QuarantinedMessage, QuarantineRecipient
from reports.models import MessageLog, MessageRecipient
from webadmin.models import Account, Domain, ListEntry, Role, SieveScript, UserListEntry, UserOptions


@dataclass(frozen=True)
class Principal:
    """Who is asking, resolved once per request."""

    user_id: int
    username: str
    role: str
    domains: frozenset[str] = frozenset()
    domain_ids: frozenset[int] = frozenset()
    addresses: frozenset[str] = frozenset()
    options: dict[str, bool] = field(default_factory=dict)
    # a user's addresses with an extension (alice+news@ of alice@): (local part, domain, the
    # domain's delimiters) for each address of the user that can take one (plus_addressing)
    extensible: tuple[tuple[str, str, str], ...] = ()
    claimed: frozenset[str] = frozenset()  # such addresses that are another account's own

    @property
    def is_global(self) -> bool:
        return self.role == Role.GLOBAL_ADMIN

    @property
    def is_admin(self) -> bool:
        return self.role != Role.USER

    @property
    def manages_settings(self) -> bool:
        return self.role in (Role.GLOBAL_ADMIN, Role.DOMAIN_ADMIN)

    def may(self, option: str) -> bool:
        if self.is_admin:
            return True
        return bool(self.options.get(option, False))

    def owns(self, address: str) -> bool:
        """One of the user's addresses, or one of them with an address extension."""
        a = address.strip().lower()
        if a in self.addresses:
            return True
        return bool(self.extensible) and a not in self.claimed and any(
            _extension_of(a, local, domain, delims) for local, domain, delims in self.extensible)

    def address_q(self, name: str) -> Q:
        """The rows whose ``name`` is an address the user :meth:`owns` (``name__in`` the
        addresses, or one of the patterns of their extended forms, not another account's)."""
        q = Q(**{f"{name}__in": sorted(self.addresses)})
        for local, domain, delims in self.extensible:
            # the prefix first: PostgreSQL finds it in the column's pattern index; the
            # expression then checks the rest of each row it found
            starts = Q()
            for d in delims:
                starts |= Q(**{f"{name}__startswith": local + d})
            pattern = f"^{re.escape(local)}[{re.escape(delims)}][^@]*@{re.escape(domain)}$"
            q |= starts & Q(**{f"{name}__regex": pattern}) & ~Q(**{f"{name}__in": sorted(self.claimed)})
        return q


def _extension_of(address: str, local: str, domain: str, delims: str) -> bool:
    lp, at, dom = address.rpartition("@")
    return (bool(at) and dom == domain and len(lp) > len(local) and lp.startswith(local)
            and lp[len(local)] in delims and "@" not in lp)


def plus_addressing(acct: Account) -> tuple[tuple[tuple[str, str, str], ...], frozenset[str]]:
    """A user's addresses that take an extension, as Postfix's ``recipient_delimiter`` delivers
    ``alice+news@example.com`` to alice: the Bayes layer's ``recipient_delimiter`` of each
    address's domain (default ``+``; empty: none), for an address whose local part has no
    delimiter after its first character (``user_address`` of it is itself: the extension
    starts right after it, as the milter cuts it). And the extended forms that are another
    account's mailbox or alias, which stay that account's."""
    from gateway_milter.layers.bayes import user_address
    from webadmin.services import current_snapshot

    snap = current_snapshot()
    out = []
    for a in sorted(acct.addresses):
        local, at, domain = a.rpartition("@")
        if not at or not local:
            continue
        delims = snap.settings_for("bayes", domain).recipient_delimiter
        if delims and user_address(a, delims) == a:
            out.append((local, domain, delims))
    if not out:
        return (), frozenset()
    others = Account.objects.exclude(pk=acct.pk)
    if all(f"{local}{domain}{delims}".isascii() for local, domain, delims in out):
        # the accounts whose mailbox or an alias starts with such a prefix (the aliases' JSON
        # text holds it as written); otherwise all (JSON would hold non-ASCII text escaped)
        near = Q()
        for local, _domain, delims in out:
            for d in delims:
                near |= Q(mailbox__istartswith=local + d) | Q(aliases__icontains=local + d)
        others = others.filter(near)
    claimed = set()
    for other in others.only("mailbox", "aliases"):
        claimed |= {x for x in other.addresses
                    if any(_extension_of(x, local, domain, delims) for local, domain, delims in out)}
    return tuple(out), frozenset(claimed)


NOBODY = Principal(0, "", "none")


def principal(user: User | AnonymousUser | Any) -> Principal:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return NOBODY
    cached = getattr(user, "_bulwark_principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    acct = Account.objects.filter(user=user).prefetch_related("domains").first()
    if acct is None:
        # A Django superuser without an Account is a global administrator (first setup).
        p = Principal(user.pk, user.username, Role.GLOBAL_ADMIN if user.is_superuser else "none")
    else:
        doms = list(acct.domains.all())
        mailbox_domain = acct.mailbox.rpartition("@")[2].lower() if acct.mailbox else ""
        extensible, claimed = plus_addressing(acct) if acct.role == Role.USER else ((), frozenset())
        p = Principal(
            user.pk, user.username, acct.role,
            domains=frozenset(d.name for d in doms),
            domain_ids=frozenset(d.pk for d in doms),
            addresses=frozenset(acct.addresses),
            options=effective_user_options(acct, mailbox_domain),
            extensible=extensible, claimed=claimed,
        )
    user._bulwark_principal = p
    return p


def effective_user_options(acct: Account, domain_name: str) -> dict[str, bool]:
    """Global defaults, then the domain's defaults, then the account's own overrides."""
    base = {f: getattr(UserOptions(), f) for f in UserOptions.FIELDS}
    glob = UserOptions.objects.filter(domain__isnull=True).first()
    dom = UserOptions.objects.filter(domain__name=domain_name).first() if domain_name else None
    for row in (glob, dom):
        if row is not None:
            base.update({f: getattr(row, f) for f in UserOptions.FIELDS})
    for k, v in (acct.options or {}).items():
        if k in base and isinstance(v, bool):
            base[k] = v
    return base


# -- domains and accounts ----------------------------------------------------------------------
def domains_visible_to(user: Any) -> QuerySet[Domain]:
    p = principal(user)
    if p.is_global:
        return Domain.objects.all()
    if p.role in (Role.DOMAIN_ADMIN, Role.QUARANTINE_ADMIN):
        return Domain.objects.filter(pk__in=p.domain_ids)
    return Domain.objects.none()


def domains_managed_by(user: Any) -> QuerySet[Domain]:
    """Domains whose settings the user may change."""
    p = principal(user)
    if p.is_global:
        return Domain.objects.all()
    if p.role == Role.DOMAIN_ADMIN:
        return Domain.objects.filter(pk__in=p.domain_ids)
    return Domain.objects.none()


def access_domain(user: Any, pk: Any, manage: bool = False) -> Domain:
    qs = domains_managed_by(user) if manage else domains_visible_to(user)
    obj = qs.filter(pk=_int(pk)).first()
    if obj is None:
        raise Http404("no such domain")
    return obj


def accounts_visible_to(user: Any) -> QuerySet[Account]:
    """Global admins see every account; domain admins see the users whose mailbox is in one of
    their domains (never other administrators)."""
    p = principal(user)
    qs = Account.objects.select_related("user")
    if p.is_global:
        return qs.all()
    if p.role == Role.DOMAIN_ADMIN and p.domains:
        q = Q()
        for d in p.domains:
            q |= Q(mailbox__iendswith="@" + d)
        return qs.filter(q, role=Role.USER)
    return qs.none()


def access_account(user: Any, pk: Any) -> Account:
    obj = accounts_visible_to(user).filter(pk=_int(pk)).first()
    if obj is None:
        raise Http404("no such user")
    return obj


# -- lists and scripts ---------------------------------------------------------------------------
def list_entries_visible_to(user: Any) -> QuerySet[ListEntry]:
    p = principal(user)
    qs = ListEntry.objects.select_related("domain")
    if p.is_global:
        return qs.all()
    if p.role == Role.DOMAIN_ADMIN:
        return qs.filter(domain_id__in=p.domain_ids)
    return qs.none()


def access_list_entry(user: Any, pk: Any) -> ListEntry:
    obj = list_entries_visible_to(user).filter(pk=_int(pk)).first()
    if obj is None:
        raise Http404("no such list entry")
    return obj


def user_list_entries_visible_to(user: Any) -> QuerySet[UserListEntry]:
    """Users' own sender lists: the user's, or those of the users a domain admin manages."""
    p = principal(user)
    qs = UserListEntry.objects.select_related("account")
    if p.is_global:
        return qs.all()
    if p.role == Role.DOMAIN_ADMIN:
        return qs.filter(account__in=accounts_visible_to(user))
    if p.role == Role.USER and p.may("manage_lists"):
        return qs.filter(account__user_id=p.user_id)
    return qs.none()


def access_user_list_entry(user: Any, pk: Any) -> UserListEntry:
    obj = user_list_entries_visible_to(user).filter(pk=_int(pk)).first()
    if obj is None:
        raise Http404("no such list entry")
    return obj


def scripts_visible_to(user: Any) -> QuerySet[SieveScript]:
    p = principal(user)
    if p.is_global:
        return SieveScript.objects.all()
    if p.role == Role.DOMAIN_ADMIN:
        return SieveScript.objects.filter(domain_id__in=p.domain_ids)
    return SieveScript.objects.none()


def access_script(user: Any, pk: Any) -> SieveScript:
    obj = scripts_visible_to(user).filter(pk=_int(pk)).first()
    if obj is None:
        raise Http404("no such script")
    return obj


# -- message log ---------------------------------------------------------------------------------
# A message is its sender's (domain's) business only when the gateway saw it sent from inside
# (authenticated or from a trusted network): anyone outside may write MAIL FROM a local
# address, and spam to another tenant forging it would show them that tenant's mail.
SENT = ("outbound", "local")


def messages_visible_to(user: Any) -> QuerySet[MessageLog]:
    p = principal(user)
    if p.is_global:
        return MessageLog.objects.all()
    if p.role in (Role.DOMAIN_ADMIN, Role.QUARANTINE_ADMIN) and p.domains:
        # id IN (recipients of my domains) uses the recipient domain index; measured on 1M rows
        # in bench/msglog_search_bench.py (docs/decisions/0050-message-log-search.md).
        rc = MessageRecipient.objects.filter(domain__in=p.domains).values("message_id")
        if p.role == Role.DOMAIN_ADMIN:
            return MessageLog.objects.filter(Q(id__in=rc) | Q(sender_domain__in=p.domains, direction__in=SENT))
        return MessageLog.objects.filter(id__in=rc)
    if p.role == Role.USER and p.may("view_log") and p.addresses:
        rc = MessageRecipient.objects.filter(p.address_q("address")).values("message_id")
        return MessageLog.objects.filter(Q(id__in=rc) | Q(mail_from__in=p.addresses, direction__in=SENT))
    return MessageLog.objects.none()


def recipients_visible_to(user: Any, message: MessageLog) -> list[MessageRecipient]:
    """The per-recipient rows of one message that this user may see (others' addresses are
    another tenant's data)."""
    p = principal(user)
    rows = list(message.recipients.all())
    if p.is_global:
        return rows
    if (p.role == Role.DOMAIN_ADMIN and message.direction in SENT
            and any(message.mail_from.lower().endswith("@" + d) for d in p.domains)):
        return rows  # the domain's own outbound message: its recipients are the domain's business
    if p.role in (Role.DOMAIN_ADMIN, Role.QUARANTINE_ADMIN):
        return [r for r in rows if r.domain.lower() in p.domains]
    return [r for r in rows if p.owns(r.address)]


_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def message_recipients_visible_to(user: Any) -> QuerySet[MessageRecipient]:
    """The per-recipient rows this user may see, over every message (the queryset form of
    :func:`recipients_visible_to`, for counts over many messages such as the dashboard's)."""
    p = principal(user)
    qs = MessageRecipient.objects.all()
    if p.is_global:
        return qs
    if p.role == Role.DOMAIN_ADMIN and p.domains:
        return qs.filter(Q(domain__in=p.domains) | Q(message__sender_domain__in=p.domains, message__direction__in=SENT))
    if p.role == Role.QUARANTINE_ADMIN and p.domains:
        return qs.filter(domain__in=p.domains)
    if p.role == Role.USER and p.addresses:
        return qs.filter(p.address_q("address"))
    return qs.none()


def redactor_for(user: Any, message: MessageLog) -> Callable[[str], str]:
    """Hide, in free text of one message (transcript lines, trace and symbol details), the
    addresses of recipients this user may not see: a message to two tenants must not show one
    tenant the other's mailboxes."""
    p = principal(user)
    if p.is_global:
        return lambda text: text
    keep = {r.address.lower() for r in recipients_visible_to(user, message)}
    keep |= {message.mail_from.lower()} | set(p.addresses)
    hidden = {r.address.lower() for r in message.recipients.all()} - keep

    def redact(text: str) -> str:
        if not hidden or not isinstance(text, str):
            return text
        return _ADDRESS.sub(lambda m: "[other recipient]" if m.group(0).lower() in hidden else m.group(0), text)

    return redact


def visible_transcript(user: Any, message: MessageLog) -> list[str]:
    redact = redactor_for(user, message)
    return [redact(line) for line in message.transcript or []]


def visible_trace(user: Any, message: MessageLog) -> list[dict[str, Any]]:
    redact = redactor_for(user, message)
    return [{k: redact(v) if isinstance(v, str) else v for k, v in t.items()} if isinstance(t, dict) else t
            for t in message.trace or []]


def visible_symbols(user: Any, message: MessageLog) -> list[dict[str, Any]]:
    redact = redactor_for(user, message)
    return [{k: redact(v) if isinstance(v, str) else v for k, v in s.items()} if isinstance(s, dict) else s
            for s in message.symbols or []]


def access_message(user: Any, pk: Any) -> MessageLog:
    obj = messages_visible_to(user).filter(pk=_int(pk)).first()
    if obj is None:
        raise Http404("no such message")
    return obj


def may_view_transcript(user: Any) -> bool:
    return principal(user).may("view_transcripts")


# -- quarantine ----------------------------------------------------------------------------------
def quarantine_recipients_visible_to(user: Any) -> QuerySet[QuarantineRecipient]:
    p = principal(user)
    qs = QuarantineRecipient.objects.all()
    if p.is_global:
        return qs
    if p.role in (Role.DOMAIN_ADMIN, Role.QUARANTINE_ADMIN) and p.domains:
        return qs.filter(domain__in=p.domains, message__queue="user")
    if p.role == Role.USER and p.may("view_quarantine") and p.addresses:
        return qs.filter(p.address_q("address"), message__queue="user")
    return qs.none()


def quarantine_visible_to(user: Any) -> QuerySet[QuarantinedMessage]:
    p = principal(user)
    if p.is_global:
        return QuarantinedMessage.objects.all()
    rc = quarantine_recipients_visible_to(user).filter(message=OuterRef("pk"))
    return QuarantinedMessage.objects.filter(Exists(rc))


@dataclass(frozen=True)
class QuarantineAccess:
    message: QuarantinedMessage
    recipients: tuple[QuarantineRecipient, ...]

    @property
    def held(self) -> list[str]:
        return [r.address for r in self.recipients if r.status == "held"]


def access_quarantined_message(user: Any, pk: Any, *, by_qid: bool = False) -> QuarantineAccess:
    """The message and the recipients of it that this user may see and act for."""
    qs = quarantine_visible_to(user)
    msg = (qs.filter(qid=str(pk)) if by_qid else qs.filter(pk=_int(pk))).first()
    if msg is None:
        raise Http404("no such quarantined message")
    rcpts = quarantine_recipients_visible_to(user).filter(message=msg).order_by("address")
    return QuarantineAccess(msg, tuple(rcpts))


def _int(v: Any) -> int:
    """An id as given: an integer, or a string of digits; anything else (true, 1.7) names no
    row (``int()`` took them for 1)."""
    if isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, str) and not v.strip().isdigit()):
        raise Http404("bad id")
    try:
        return int(v)
    except (TypeError, ValueError):
        raise Http404("bad id") from None
