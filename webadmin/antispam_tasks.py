"""Celery tasks of the anti-spam area (names are explicit: ``area.verb``).

``bayes.train_message``: learn messages from "mark as spam / mark as ham" events. The payload
is JSON: quarantine ids and/or paths of stored messages, the label and optional scopes.
Training is idempotent (each message is identified by a digest; learning it again with the
same label changes nothing, with the other label it moves the counts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings

from gateway_milter.antispam.bayes import BayesClassifier
from gateway_milter.antispam.relays import TrustConfig
from gateway_milter.antispam.saview import SaMessage, build_view, trust_config_for
from gateway_milter.mime.view import parse_message
from gateway_milter.pipeline.rawmessage import split_message
from gateway_milter.store import default_store
from webadmin.services import current_snapshot

MAX_MESSAGE = 10 * 1024 * 1024


def view_of_bytes(raw: bytes, trust: TrustConfig | None = None) -> SaMessage:
    """A stored message's view as the milter made it. ``trust``: the trust path to read its
    relays with (default: the published policy's; a caller reading many passes it once)."""
    headers, body = split_message(raw[:MAX_MESSAGE])
    head = b"".join(n.encode("utf-8", "surrogateescape") + b": " + v.encode("utf-8", "surrogateescape") + b"\r\n"
                    for n, v in headers)
    view = build_view(headers, head + b"\r\n" + body, parse_message(head + b"\r\n" + body))
    # the relays read as the milter reads them (the sender history's network is the first untrusted one)
    view.trust = trust if trust is not None else trust_config_for(current_snapshot(), None)
    return view


def learn_bytes(raw: bytes, is_spam: bool, scopes: list[str] | None = None, min_learned: int = 200,
                trust: TrustConfig | None = None) -> bool:
    """Learn one stored message (see :func:`view_of_bytes` for ``trust``)."""
    return BayesClassifier(default_store(), min_learned).learn(view_of_bytes(raw, trust), is_spam, scopes or ["global"])


def _allowed_path(p: str) -> Path:
    """Paths must lie inside the data directory (the quarantine store or an upload area):
    a task payload never names an arbitrary file."""
    base = Path(settings.GATEWAY.data_dir).resolve()
    path = (base / p).resolve() if not Path(p).is_absolute() else Path(p).resolve()
    if base not in path.parents:
        raise ValueError(f"path {p!r} is outside the data directory")
    return path


@shared_task(name="bayes.train_message")
def train_message(label: str, quarantine_ids: list[str] | None = None, paths: list[str] | None = None,
                  scopes: list[str] | None = None) -> dict[str, Any]:
    if label not in ("spam", "ham"):
        raise ValueError("label must be spam or ham")
    learned = unchanged = missing = 0
    raws: list[bytes] = []
    if quarantine_ids:
        from quarantine.models import QuarantinedMessage
        from quarantine.services import read_message

        found = {m.qid: m for m in QuarantinedMessage.objects.filter(qid__in=list(quarantine_ids))}
        missing += len(set(quarantine_ids) - set(found))
        for m in found.values():
            try:
                raws.append(read_message(m))
            except OSError:
                missing += 1
    for p in paths or []:
        try:
            raws.append(_allowed_path(p).read_bytes())
        except OSError:
            missing += 1
    trust = trust_config_for(current_snapshot(), None)
    for raw in raws:
        if learn_bytes(raw, label == "spam", scopes, trust=trust):
            learned += 1
        else:
            unchanged += 1
    return {"learned": learned, "unchanged": unchanged, "missing": missing}


@shared_task(name="backscatter.rotate_keys")
def rotate_batv_keys() -> dict[str, int]:
    """Start a new BATV signing key; the previous one stays valid for the layer's grace period.
    Idempotent enough for a periodic schedule (monthly is a sensible default)."""
    from gateway_milter.layers.backscatter import load_keys, rotate_keys

    new_id = rotate_keys(default_store())
    return {"key_id": new_id, "keys": len(load_keys(default_store()))}
