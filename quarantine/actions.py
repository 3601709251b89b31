"""Quarantine actions scoped to what the actor may see (webadmin.access.QuarantineAccess):
release, release and allow the sender, delete, and mark as spam / not spam (Bayes training
through the Celery task ``bayes.train_message``, called by name).

Marking trains only the Bayes scopes the actor administers (docs/ui.md, "Roles"): a global
administrator the message's own scopes (global, its domains', its user's); a domain or
quarantine administrator the scopes of their domains and of their recipients, never
``global`` (every tenant reads it) nor another tenant's; a user only their own per-user scope,
and only where the Bayes layer keeps per-user scopes (``per_user``): elsewhere a user cannot
mark at all."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from quarantine.models import QuarantinedMessage, QuarantineRecipient
from quarantine.services import ReleaseError, do_release_message, store
from webadmin.access import Principal, QuarantineAccess
from webadmin.models import Domain

log = logging.getLogger("bulwark.quarantine")
MAX_BULK = 500  # messages one bulk request may act on (more: refused whole, never cut short)
ACTIONS = ("release", "release_allow", "delete", "spam", "ham")
TRAINING = ("spam", "ham")


class ActionError(Exception):
    pass


class ActionNotAllowed(Exception):
    """The actor's role may not use this action: pages and the API answer 404 (ADR 0050)."""


def user_training_addresses(p: Principal) -> frozenset[str]:
    """A user's addresses whose domain keeps per-user Bayes scopes (the Bayes layer's
    ``per_user`` in the published policy): the scopes ``user:ADDRESS`` only they read."""
    if p.role != "user" or not p.addresses:
        return frozenset()
    from webadmin.services import current_snapshot

    snap = current_snapshot()
    return frozenset(a.lower() for a in p.addresses
                     if "@" in a and snap.settings_for("bayes", a.rpartition("@")[2].lower()).per_user)


def may_train(p: Principal) -> bool:
    """Mark as spam / not spam: administrators; a user where per-user Bayes is on (their
    feedback then teaches only their own scope, never one the domain or other tenants read)."""
    return p.is_admin or bool(user_training_addresses(p))


def check_action_allowed(p: Principal, action: str) -> None:
    if action in TRAINING and not may_train(p):
        raise ActionNotAllowed(action)


def training_scopes(p: Principal, addresses: Iterable[str], sender: str = "") -> list[str]:
    """The Bayes scopes this actor may train with a message, given the recipients they act for
    (those they may see) and its envelope sender. The task learns the message in those of its
    own scopes that are listed here (webadmin/antispam_tasks.py), so this list only narrows."""
    if not may_train(p):
        return []
    from gateway_milter.layers.bayes import user_address
    from webadmin.services import current_snapshot

    addrs = sorted({a.strip().lower() for a in addresses if a and "@" in a})
    snap = current_snapshot()
    # a user's scope is named by the address without its extension (alice+news@ is alice@), as
    # the milter names it (layers/bayes.py, user_address)
    users = sorted({user_address(a, snap.settings_for("bayes", a.rpartition("@")[2]).recipient_delimiter)
                    for a in addrs})
    if not p.is_admin:
        own = user_training_addresses(p)
        return [f"user:{a}" for a in users if a in own]
    if p.is_global:
        doms = {a.rpartition("@")[2] for a in addrs}
        if "@" in sender:
            doms.add(sender.rpartition("@")[2].lower())  # outbound mail is classified under its sender's domain
        return ["global"] + [f"dom:{d}" for d in sorted(doms)] + [f"user:{a}" for a in users]
    mine = [a for a in addrs if a.rpartition("@")[2] in p.domains]
    doms = {a.rpartition("@")[2] for a in mine}
    if "@" in sender and sender.rpartition("@")[2].lower() in p.domains:
        doms.add(sender.rpartition("@")[2].lower())
    return [f"dom:{d}" for d in sorted(doms)] + [f"user:{a}" for a in users if a.rpartition("@")[2] in p.domains]


def _quarantine_training_scopes(p: Principal, qa: QuarantineAccess) -> list[str]:
    addresses = [r.address for r in qa.recipients]
    if p.is_global and qa.message.log_id:
        # the classification's policy domain is the first accepted recipient's, quarantined or not
        from reports.models import MessageRecipient

        addresses += MessageRecipient.objects.filter(message__log_id=qa.message.log_id).values_list("address",
                                                                                                   flat=True)
    return training_scopes(p, addresses, qa.message.mail_from)


def do_delete_for(msg: QuarantinedMessage, addresses: Iterable[str], actor: str = "") -> int:
    """Delete the message for these recipients; the stored bytes go when nobody holds it any more."""
    wanted = [a.lower() for a in addresses]
    with transaction.atomic():
        n = (QuarantineRecipient.objects.filter(message=msg, status="held", address__in=wanted)
             .update(status="deleted", released_by=actor[:150], released_at=timezone.now()))
        if not QuarantineRecipient.objects.filter(message=msg, status="held").exists():
            store().delete(msg.storage_path)
    return n


def train(qids: list[str], spam: bool, actor: str, scopes: list[str]) -> bool:
    """Queue Bayes training of stored messages by task name (the anti-spam area owns
    ``bayes.train_message(label, quarantine_ids, scopes)``), limited to ``scopes`` (from
    :func:`training_scopes`). Returns False when there is nothing stored to learn from, no scope
    to learn in, or the task could not be queued (the UI says so instead of pretending)."""
    from config.celery import app

    if not qids or not scopes:
        return False
    try:
        # Registers the tasks of the configured task modules in this process, so that the
        # embedded (eager) setup runs the task here; with a broker it is sent to the workers.
        app.loader.import_default_modules()
        app.signature("bayes.train_message", kwargs={"label": "spam" if spam else "ham",
                                                      "quarantine_ids": list(qids),
                                                      "scopes": list(scopes)}).apply_async()
        log.info("%s queued %s training of %s in %s", actor, "spam" if spam else "ham", ", ".join(qids),
                 ", ".join(scopes))
        return True
    except Exception as e:  # noqa: BLE001 - training is best effort, never blocks a release
        log.warning("cannot queue bayes.train_message for %s: %s", ", ".join(qids), e)
        return False


def allow_sender(p: Principal, sender: str, recipients: Iterable[str]) -> None:
    """Add the sender to the allow list in the actor's scope: global for global admins, the
    recipients' domains for domain/quarantine admins, the user's own list for users."""
    from webadmin.services import do_add_list_entry

    if not sender:
        return
    if p.is_global:
        do_add_list_entry("allow", "sender", sender, None, comment="released from quarantine", actor=p.username)
        return
    if p.role == "user":
        from webadmin.models import Account
        from webadmin.services import do_add_user_list_entry

        acct = (Account.objects.filter(user_id=p.user_id).first() if p.user_id else
                Account.objects.filter(mailbox__in=p.addresses).first())
        if acct is not None:
            do_add_user_list_entry(acct, "allow", sender)
        return
    for name in sorted({a.rpartition("@")[2] for a in recipients} & p.domains):
        dom = Domain.objects.filter(name=name).first()
        if dom is not None:
            do_add_list_entry("allow", "sender", sender, dom, comment="released from quarantine", actor=p.username)


def do_quarantine_action(p: Principal, qa: QuarantineAccess, action: str) -> str:
    """Apply one action for the recipients in ``qa`` (only those the actor may see).
    Raises :class:`ActionNotAllowed` for an action the actor's role may not use."""
    msg = qa.message
    if action not in ACTIONS:
        raise ActionError(f"unknown action {action!r}")
    check_action_allowed(p, action)
    if action in ("release", "release_allow"):
        held = qa.held
        if not held:
            return "nothing to release (already released or deleted)"
        try:
            sent = do_release_message(msg, held, actor=p.username)
        except ReleaseError as e:
            raise ActionError(str(e)) from e
        if action == "release_allow":
            allow_sender(p, msg.mail_from, sent)
        return f"released to {len(sent)} recipient(s)"
    if action == "delete":
        n = do_delete_for(msg, qa.held, actor=p.username)
        return f"deleted for {n} recipient(s)"
    ok = train([msg.qid], action == "spam", p.username, _quarantine_training_scopes(p, qa))
    what = "spam" if action == "spam" else "not spam"
    if not ok:  # (the task queue unavailable: an error, not "done")
        raise ActionError(f"could not queue training as {what}: the task queue is unavailable, try again later")
    return f"marked as {what}"
