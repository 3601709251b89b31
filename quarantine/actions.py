"""Quarantine actions scoped to what the actor may see (webadmin.access.QuarantineAccess):
release, release and allow the sender, delete, and mark as spam / not spam (Bayes training
through the Celery task ``bayes.train_message``, called by name)."""

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
ACTIONS = ("release", "release_allow", "delete", "spam", "ham")


class ActionError(Exception):
    pass


def do_delete_for(msg: QuarantinedMessage, addresses: Iterable[str], actor: str = "") -> int:
    """Delete the message for these recipients; the stored bytes go when nobody holds it any more."""
    wanted = [a.lower() for a in addresses]
    with transaction.atomic():
        n = (QuarantineRecipient.objects.filter(message=msg, status="held", address__in=wanted)
             .update(status="deleted", released_by=actor[:150], released_at=timezone.now()))
        if not QuarantineRecipient.objects.filter(message=msg, status="held").exists():
            store().delete(msg.storage_path)
    return n


def train(qids: list[str], spam: bool, actor: str) -> bool:
    """Queue Bayes training of stored messages by task name (the anti-spam area owns
    ``bayes.train_message(label, quarantine_ids)``). Returns False when there is nothing stored
    to learn from or the task could not be queued (the UI says so instead of pretending)."""
    from config.celery import app

    if not qids:
        return False
    try:
        # Registers the tasks of the configured task modules in this process, so that the
        # embedded (eager) setup runs the task here; with a broker it is sent to the workers.
        app.loader.import_default_modules()
        app.signature("bayes.train_message", kwargs={"label": "spam" if spam else "ham",
                                                      "quarantine_ids": list(qids)}).apply_async()
        log.info("%s queued %s training of %s", actor, "spam" if spam else "ham", ", ".join(qids))
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
    """Apply one action for the recipients in ``qa`` (only those the actor may see)."""
    msg = qa.message
    if action not in ACTIONS:
        raise ActionError(f"unknown action {action!r}")
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
    ok = train([msg.qid], action == "spam", p.username)
    what = "spam" if action == "spam" else "not spam"
    return f"marked as {what}" if ok else f"could not queue training as {what}"
