"""Quarantine digests and their one-click links.

A link token is ``TimestampSigner``-signed (django.core.signing: HMAC with SECRET_KEY) and binds
one quarantined message (qid), one recipient address and one action; it expires after
AdminSettings.digest_link_days. Following it with GET only shows a confirmation page (link
scanners prefetch URLs); the POST of that page acts, and release works once because
do_release_message only releases recipients still held.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from quarantine.models import QuarantineRecipient
from webadmin.models import Account, AdminSettings

SALT = "bulwark.quarantine.digest"
ACTIONS = ("view", "release", "release_allow")


@dataclass(frozen=True)
class DigestLink:
    qid: str
    address: str
    action: str


def make_token(qid: str, address: str, action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(action)
    return signing.TimestampSigner(salt=SALT).sign_object({"q": qid, "a": address.lower(), "x": action}, compress=True)


def read_token(token: str) -> DigestLink:
    """Raises signing.BadSignature (or SignatureExpired) for anything but a valid, fresh token."""
    max_age = dt.timedelta(days=AdminSettings.get().digest_link_days)
    data = signing.TimestampSigner(salt=SALT).unsign_object(token, max_age=max_age)
    if not isinstance(data, dict) or data.get("x") not in ACTIONS:
        raise signing.BadSignature("bad payload")
    return DigestLink(str(data["q"]), str(data["a"]), str(data["x"]))


def link(token: str) -> str:
    base = AdminSettings.get().public_url.rstrip("/") or f"https://{settings.GATEWAY.hostname}"
    return base + reverse("quarantine:digest", args=[token])


def due(acct: Account, now: dt.datetime) -> bool:
    last = acct.digest_last_sent
    if acct.digest_schedule == "never":
        return False
    if last is None:
        return True
    gap = {"hours": dt.timedelta(hours=max(1, acct.digest_every_hours)), "daily": dt.timedelta(days=1),
           "weekly": dt.timedelta(days=7)}[acct.digest_schedule]
    return now - last >= gap - dt.timedelta(minutes=5)


def send_digest(acct: Account, now: dt.datetime | None = None) -> int:
    """Mail one user the messages quarantined for them since the last digest. Returns how many
    were listed (0: nothing sent)."""
    from webadmin.access import quarantine_recipients_visible_to

    now = now or timezone.now()
    since = acct.digest_last_sent or (now - dt.timedelta(days=7))
    rows = list(quarantine_recipients_visible_to(acct.user).filter(status="held", message__created__gte=since)
                .select_related("message").order_by("-message__created")[:200])
    if not rows:
        acct.digest_last_sent = now
        acct.save(update_fields=["digest_last_sent"])
        return 0
    items = [{"r": r, "m": r.message,
              "view": link(make_token(r.message.qid, r.address, "view")),
              "release": link(make_token(r.message.qid, r.address, "release")),
              "release_allow": link(make_token(r.message.qid, r.address, "release_allow"))} for r in rows]
    ctx = {"items": items, "account": acct, "days": AdminSettings.get().digest_link_days}
    text = render_to_string("quarantine/digest_email.txt", ctx)
    html = render_to_string("quarantine/digest_email.html", ctx)
    mail = EmailMultiAlternatives(f"Quarantine digest: {len(rows)} message(s) held for you", text,
                                  f"quarantine@{settings.GATEWAY.hostname}", [acct.mailbox or acct.user.email])
    mail.attach_alternative(html, "text/html")
    mail.send()
    acct.digest_last_sent = now
    acct.save(update_fields=["digest_last_sent"])
    return len(rows)


def recipient_for(link_: DigestLink) -> QuarantineRecipient | None:
    return (QuarantineRecipient.objects.select_related("message")
            .filter(message__qid=link_.qid, address=link_.address, message__queue="user").first())
