"""Celery tasks of the anti-spam area (names are explicit: ``area.verb``).

``bayes.train_message``: learn messages from "mark as spam / mark as ham" events. The payload
is JSON: quarantine ids and/or paths of stored messages, the label and scopes. A quarantined
message is learned in those of its own scopes (:func:`feedback_of`) that the payload's scopes
allow (where none is, in those of its recipients' user scopes that are): the scopes the actor
administers, computed by the page or API that queued the task
(quarantine/actions.py, ``training_scopes``); without scopes it is learned nowhere. A stored
file is learned in the payload's scopes (default ``global``).
Training is idempotent (each message is identified by a digest; learning it again with the
same label changes nothing, with the other label it moves the counts). So the task is retried
when the token store fails (Redis restarting, the embedded store's write lock held past the
batch wait): up to ``TRAIN_RETRIES`` times, 2 s after the first failure, then twice as long
each time up to 5 minutes (:func:`retry_delay`; the countdown is explicit, so Celery adds no
jitter): 2,910 s, about 48 minutes in all, room for a Redis restart or upgrade; a retry
learns again what the failed try had learned (counted as unchanged). It is
acknowledged when it ends, not when it starts (``acks_late``): a worker killed in the middle
leaves it queued for another. Run eagerly (the embedded setup, no worker), a failure is
raised to the caller at once, which says the training was not queued.

``bayes.backup``: once a day, what every scope learned to ``GATEWAY_DATA_DIR/backups`` (the
newest ``GATEWAY_BAYES_BACKUPS`` files kept; restore with ``manage.py bayes restore``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import shared_task
from django.conf import settings

from gateway_milter.antispam.bayes import BayesClassifier, storable_scopes
from gateway_milter.antispam.relays import TrustConfig
from gateway_milter.antispam.saview import SaMessage, build_view, trust_config_for, view_limit
from gateway_milter.context import ConnectionInfo, MessageContext, Recipient, split_address
from gateway_milter.layers.bayes import scopes_for, user_address
from gateway_milter.mime.headers import decode_words
from gateway_milter.mime.view import parse_message
from gateway_milter.pipeline.rawmessage import split_message
from gateway_milter.store import StoreError, default_store
from gateway_milter.transforms.spamheaders import VERSION as SPAM_VERSION
from webadmin.services import current_snapshot

if TYPE_CHECKING:
    from gateway_milter.policy.snapshot import PolicySnapshot
    from quarantine.models import QuarantinedMessage

MAX_MESSAGE = 10 * 1024 * 1024
# a message-log recipient with one of these actions was refused at RCPT: not one of the message's
REFUSED = ("reject", "tempfail")


def own_subject_tags(policy: PolicySnapshot) -> tuple[str, ...]:
    """The subject tags the gateway puts on spam (scoring's ``subject_tag``, global and each
    domain's), longest first."""
    names = policy.domain_names  # (an alias domain's are its domain's)
    tags = {policy.settings_for("scoring", None).subject_tag, *(policy.settings_for("scoring", n).subject_tag
                                                                for n in names)}
    return tuple(sorted((t.strip() for t in tags if t.strip()), key=len, reverse=True))


_SUBJECT_TAG_MARK = re.compile(r"(?:^|;)\s*subject_tag=(added|kept)\s*(?:;|$)")


def without_own_tag(headers: list[tuple[str, str]], tags: tuple[str, ...]) -> list[tuple[str, str]]:
    """The headers with the gateway's own subject tag taken off the Subject of a message it
    flagged (its own ``X-Spam-Status: Yes, ... version=Bulwark``, which replaces any other):
    a message saved from a mailbox (a junk folder exported for ``bayes train``, a message a
    user marks) carries it, and Bayes learned the tag, which no message arriving has, as the
    mark of spam (or, from a false positive learned as ham, of ham). The other headers of the
    verdict are never read (tokenizer, ``_IGNORED``). A flag of another filter (an upstream
    ``X-Spam-Flag: YES`` on a message as it arrived) leaves the Subject as the milter read it:
    stripped, the message learned was another than the one classified. So does a Subject that
    arrived with the tag already (the sender's, or an upstream filter's of the same tag), which
    the gateway's ``X-Bulwark-Result`` tells apart (``subject_tag=kept``, not ``added``); a copy
    delivered before that field existed is read as tagged by the gateway."""
    if not tags or not any(n.lower() == "x-spam-status" and v.lstrip().startswith("Yes,")
                           and f"version={SPAM_VERSION}" in v for n, v in headers):
        return headers
    marks = {m.group(1) for n, v in headers if n.lower() == "x-bulwark-result" and (m := _SUBJECT_TAG_MARK.search(v))}
    if marks and "added" not in marks:
        return headers
    out = list(headers)
    for i, (name, value) in enumerate(out):
        if name.lower() != "subject":
            continue
        text = decode_words(value) if "=?" in value else value
        bare = text.lstrip()
        for tag in tags:
            if bare.startswith(tag):
                out[i] = (name, bare[len(tag):].lstrip(" \t"))
                break
        break
    return out


def view_of_bytes(raw: bytes, trust: TrustConfig | None = None, tags: tuple[str, ...] | None = None,
                  max_text: int | None = None) -> SaMessage:
    """A stored message's view as the milter made it, less the gateway's own subject tag
    (:func:`without_own_tag`). ``trust``: the trust path to read its relays with, ``tags``: the
    subject tags, ``max_text``: the view's bound (saview.view_limit) (defaults: the published
    policy's; a caller reading many passes them once)."""
    headers, body = split_message(raw[:MAX_MESSAGE])
    headers = without_own_tag(headers, tags if tags is not None else own_subject_tags(current_snapshot()))
    head = b"".join(n.encode("utf-8", "surrogateescape") + b": " + v.encode("utf-8", "surrogateescape") + b"\r\n"
                    for n, v in headers)
    limit = max_text if max_text is not None else view_limit(current_snapshot())
    view = build_view(headers, head + b"\r\n" + body, parse_message(head + b"\r\n" + body), max_text=limit)
    # the relays read as the milter reads them (the sender history's network is the first untrusted one)
    view.trust = trust if trust is not None else trust_config_for(current_snapshot(), None)
    return view


def learn_bytes(raw: bytes, is_spam: bool, scopes: list[str] | None = None, min_learned: int = 200,
                trust: TrustConfig | None = None, tags: tuple[str, ...] | None = None) -> bool:
    """Learn one stored message (see :func:`view_of_bytes` for ``trust`` and ``tags``)."""
    return BayesClassifier(default_store(), min_learned).learn(view_of_bytes(raw, trust, tags), is_spam,
                                                               scopes or ["global"])


def feedback_of(m: QuarantinedMessage, policy: PolicySnapshot) -> tuple[list[str], list[str], TrustConfig]:
    """The Bayes scopes a quarantined message may be learned in ("mark as spam / ham") and the
    trust path its relays are read with. The message is rebuilt as the milter saw it (the log
    record's accepted recipients, client address and SASL login; without the record, the
    quarantined recipients and the direction), its policy domain chosen as the milter chooses it
    (pipeline/transaction.py); the scopes are those of the milter's classification and autolearn
    (the Bayes layer's ``scopes_for`` under the published settings of that domain), plus the
    domain scope of every other local recipient's domain that reads one (per_domain): a message
    to two tenants was classified under the first one's, and the second tenant's administrator
    corrects their own scope. Second, the user scopes of its local recipients whose domain keeps
    them (per_user), learned where none of the first is the actor's to teach: a user's feedback
    on a message to several recipients, which the milter classified without any user scope."""
    from reports.models import MessageLog

    log = MessageLog.objects.filter(log_id=m.log_id).first() if m.log_id else None
    if log is not None:
        rcpts = [r.address for r in log.recipients.order_by("id") if r.action not in REFUSED]
        conn = ConnectionInfo(client_ip=log.client_ip or None,
                              macros={"{auth_authen}": log.auth_user} if log.auth_user else {})
    else:
        rcpts = [r.address for r in m.recipients.order_by("id")]
        conn = ConnectionInfo()
    ctx = MessageContext(conn, policy)
    ctx.mail_from = m.mail_from
    for a in rcpts:
        dom = split_address(a)[1]
        ctx.recipients.append(Recipient(a, dom, policy.is_local_domain(dom)))
    internal = ctx.is_internal_sender if log is not None else m.direction == "outbound"
    if internal:  # judged by the sender's domain
        ctx.policy_domain = policy.canonical_domain(ctx.sender_domain)
    elif ctx.recipients and ctx.recipients[0].is_local:  # by the first recipient's
        ctx.policy_domain = policy.canonical_domain(ctx.recipients[0].domain)
    scopes = scopes_for(ctx, policy.settings_for("bayes", ctx.policy_domain))
    for r in ctx.recipients:
        dom = policy.canonical_domain(r.domain) if r.is_local else None
        if dom and "dom:" + dom not in scopes and policy.settings_for("bayes", dom).per_domain:
            scopes.insert(scopes.index("global"), "dom:" + dom)
    # the user scope of every local recipient whose domain keeps them: the milter reads one only
    # for mail to that one recipient, but a user who marks a message sent to several has only
    # their own scope to teach, and what they teach it is read for their next message
    users: list[str] = []
    for r in ctx.recipients:
        dom = policy.canonical_domain(r.domain) if r.is_local else None
        user = storable_scopes(["user:" + user_address(r.plain, policy.settings_for("bayes", dom).recipient_delimiter)]
                               ) if dom else []
        if user and user[0] not in scopes + users and policy.settings_for("bayes", dom).per_user:
            users.append(user[0])
    return scopes, users, trust_config_for(policy, ctx.policy_domain, bool(conn.auth_user))


def canonical_scopes(payload: list[str], policy: PolicySnapshot) -> list[str]:
    """The payload's scopes, in order and each once, with domain scopes under their canonical
    names (an alias domain's recipient is learned in its domain's scope, as the layer reads it)."""
    out: dict[str, None] = {}
    for s in payload:
        if s.startswith("dom:"):
            out["dom:" + (policy.canonical_domain(s[4:]) or s[4:].lower())] = None
        elif s.startswith("user:"):
            out[s.lower()] = None
        else:
            out[s] = None
    return list(out)


def allowed_scopes(payload: list[str], policy: PolicySnapshot) -> set[str]:
    return set(canonical_scopes(payload, policy))


def _allowed_path(p: str) -> Path:
    """Paths must lie inside the data directory (the quarantine store or an upload area):
    a task payload never names an arbitrary file."""
    base = Path(settings.GATEWAY.data_dir).resolve()
    path = (base / p).resolve() if not Path(p).is_absolute() else Path(p).resolve()
    if base not in path.parents:
        raise ValueError(f"path {p!r} is outside the data directory")
    return path


TRAIN_RETRIES = 16  # 2 + 4 + ... + 256 + 8 x 300 s = 2,910 s of retries


def retry_delay(retries: int) -> int:
    """Seconds before retry number ``retries + 1`` of a training the token store failed."""
    return min(2 * 2 ** retries, 300)


@shared_task(name="bayes.train_message", bind=True, acks_late=True, max_retries=TRAIN_RETRIES)
def train_message(self: Any, label: str, quarantine_ids: list[str] | None = None, paths: list[str] | None = None,
                  scopes: list[str] | None = None) -> dict[str, Any]:
    """``scopes``: for quarantined messages, the scopes the actor may train (a message is learned
    in its own scopes that are among them, never in one it does not belong to; a message with
    none of them counts as unchanged); for paths, the scopes to learn into. A bulk writer
    (``batch_writes``): on the embedded store it waits for a running ``bayes train`` or the
    background learner instead of giving up after the message path's second. A failed token
    store retries the task (module docstring); after the last retry the failure is raised."""
    from gateway_milter.store import batch_writes

    try:
        with batch_writes():
            return _train_message(label, quarantine_ids, paths, scopes)
    except StoreError as e:
        if self.request.is_eager or self.request.called_directly:
            raise
        raise self.retry(exc=e, countdown=retry_delay(self.request.retries)) from e


def _train_message(label: str, quarantine_ids: list[str] | None, paths: list[str] | None,
                   scopes: list[str] | None) -> dict[str, Any]:
    if label not in ("spam", "ham"):
        raise ValueError("label must be spam or ham")
    learned = unchanged = missing = 0
    snapshot = current_snapshot()
    trust = trust_config_for(snapshot, None)
    tags = own_subject_tags(snapshot)
    todo: list[tuple[bytes, list[str], TrustConfig, tuple[str, ...]]] = []  # (message, scopes, trust path, tags)
    if quarantine_ids:
        from quarantine.models import QuarantinedMessage

        allowed = allowed_scopes(scopes or [], snapshot)
        from quarantine.services import read_message

        found = {m.qid: m for m in QuarantinedMessage.objects.filter(qid__in=list(quarantine_ids))}
        missing += len(set(quarantine_ids) - set(found))
        for m in found.values():
            try:
                raw = read_message(m)
            except OSError:
                missing += 1
                continue
            own_scopes, user_scopes, own_trust = feedback_of(m, snapshot)
            # (held as it arrived: the gateway tagged nothing, whatever flags it carries)
            todo.append((raw, [s for s in own_scopes if s in allowed] or [s for s in user_scopes if s in allowed],
                         own_trust, ()))
    for p in paths or []:
        try:
            todo.append((_allowed_path(p).read_bytes(), canonical_scopes(scopes or ["global"], snapshot), trust,
                         tags))
        except OSError:
            missing += 1
    for raw, learn_scopes, learn_trust, own_tags in todo:
        if learn_scopes and learn_bytes(raw, label == "spam", learn_scopes, trust=learn_trust, tags=own_tags):
            learned += 1
        else:
            unchanged += 1
    if missing:
        # (the page said "marked" when it queued the task: the worker's log says what it could
        # not read, a message deleted or expired from the quarantine before the worker ran)
        logging.getLogger("bulwark.antispam").warning(
            "bayes.train_message: %d of the message(s) to learn as %s were gone and not learned", missing, label)
    return {"learned": learned, "unchanged": unchanged, "missing": missing}


@shared_task(name="backscatter.rotate_keys")
def rotate_batv_keys() -> dict[str, int | bool]:
    """Start a new BATV signing key; the previous one stays valid for the layer's grace period.
    Idempotent enough for a periodic schedule (monthly is a sensible default). ``rotated`` is
    false when the rotation was skipped (all nine key ids still in use; logged as a warning)."""
    from gateway_milter.layers.backscatter import load_keys, rotate_keys

    store = default_store()
    before = [int(str(k["id"])) for k in load_keys(store) if k.get("retired") is None]
    new_id = rotate_keys(store)
    return {"key_id": new_id, "keys": len(load_keys(store)), "rotated": new_id not in before}


BACKUP_PREFIX = "bayes-"
BACKUP_SUFFIX = ".jsonl.gz"


@shared_task(name="bayes.backup")
def backup_bayes(keep: int | None = None) -> dict[str, Any]:
    """Write every learned scope to ``backups/bayes-YYYYMMDDTHHMMSSffffffZ.jsonl.gz`` under the data
    directory and remove the oldest beyond ``keep`` (``GATEWAY_BAYES_BACKUPS``; 0 writes none).
    Nothing learned: no file. A failed backup leaves no partial file and removes nothing."""
    from datetime import UTC, datetime

    from gateway_milter.antispam.bayesbackup import backup, learned_scopes

    log = logging.getLogger("bulwark.antispam")
    cfg = settings.GATEWAY
    keep = cfg.bayes_backups if keep is None else keep
    if keep <= 0:
        return {"written": None, "removed": 0}
    store = default_store()
    scopes = learned_scopes(store)
    if not scopes:
        return {"written": None, "removed": 0}
    cfg.backup_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")  # (names sort by time)
    path = cfg.backup_dir / f"{BACKUP_PREFIX}{stamp}{BACKUP_SUFFIX}"
    end = backup(store, path, scopes)
    old = sorted(cfg.backup_dir.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}"))[:-keep]
    for f in old:
        f.unlink(missing_ok=True)
    fields = sum(n for per in end["fields"].values() for n in per.values())
    log.info("bayes backup: %s (%d scope(s), %d field(s)); %d old backup(s) removed", path, len(scopes), fields,
             len(old))
    return {"written": str(path), "scopes": len(scopes), "fields": fields, "removed": len(old)}
