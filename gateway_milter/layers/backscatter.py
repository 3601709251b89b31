"""Backscatter protection with BATV (Bounce Address Tag Validation, draft-levine-smtp-batv-01,
``prvs=`` scheme).

Outbound: the envelope sender ``user@example.com`` becomes ``prvs=KDDDSSSSSS=user@example.com``
(K key number, DDD last three digits of the expiry day number, SSSSSS the first three bytes of
HMAC-SHA1 over ``K DDD address``). The milter front applies it with ``chgfrom``: the transaction
reads ``ctx.facts["change_sender"]``, which :func:`sign_envelope_sender` sets.

Inbound: a delivery status notification (null sender) to a local user is refused unless its
recipient carries a valid tag: real bounces of our own mail always do, backscatter from forged
senders never does. Judged after DATA (not at RCPT) so that sender-verification callouts,
which use the null sender but never send data, keep working; read receipts and auto-replies
(null sender, not DSNs) pass unless ``only_dsn`` is off.

Keys live in the shared state store (``batv:keys``), created on first use; :func:`rotate_keys`
starts a new key and keeps the previous one valid for ``grace_days`` (at most until the tags it
made expire).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway_milter.context import split_address
from gateway_milter.layers.base import BaseSettings, check_reply, Layer, LayerFindings, PolicyRule, SettingsError
from gateway_milter.store import StateStore, StoreError, default_store
from gateway_milter.verdict import Direction, FailMode, Outcome, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext

KEYS = "batv:keys"
# a retired key cannot verify any unexpired tag after this (validity_days is at most 30; one
# day more for the day-number rounding of the expiry)
KEEP_RETIRED_DAYS = 31
MAX_VALIDITY_DAYS = 30  # the largest validity_days allowed
log = logging.getLogger("bulwark.backscatter")
_TAG = re.compile(r"(?i)^prvs=(\d)(\d{3})([0-9a-f]{6})=(.+@.+)$")


# an exempt_recipients entry: local part (with or without @), address, or @domain; no pattern
_EXEMPT_ENTRY = re.compile(r"^(?:[^@\s*?,;<>]+@?|[^@\s*?,;<>]+@[^@\s*?,;<>]+|@[^@\s*?,;<>]+)$")


@dataclass(frozen=True, slots=True)
class BackscatterSettings(BaseSettings):
    # Off until turned on: outbound mail must be signed for a while (validity_days) before
    # unsigned bounces may be refused, or genuine bounces of older mail would be lost.
    mode: str = "off"
    sign_outbound: bool = True
    refuse_unsigned_bounces: bool = True
    only_dsn: bool = True  # judge only delivery status notifications (not MDNs, auto-replies)
    validity_days: int = 7  # a tag is accepted this many days after signing
    grace_days: int = 7  # a rotated-out key stays valid this long
    # local parts (or addresses, local@domain, or whole domains, @domain) that always accept bounces
    exempt_recipients: tuple[str, ...] = ("postmaster", "abuse")
    reject_text: str = "Bounce refused: the original message was not sent by this system"

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if not 1 <= self.validity_days <= MAX_VALIDITY_DAYS:
            raise SettingsError("validity_days", f"must be 1..{MAX_VALIDITY_DAYS}")
        if not 0 <= self.grace_days <= 365:
            raise SettingsError("grace_days", "must be 0..365")
        for e in self.exempt_recipients:
            if not isinstance(e, str) or not _EXEMPT_ENTRY.match(e.strip()):
                raise SettingsError("exempt_recipients", f"{e!r} is not a local part (postmaster), an address "
                                                         "(postmaster@example.com) or a domain (@example.com)")
        check_reply("550", "5.7.1", self.reject_text)


def _day(now: float) -> int:
    return int(now // 86400)


def load_keys(store: StateStore, now: float | None = None) -> list[dict[str, object]]:
    raw = store.get(KEYS)
    if raw is None:
        created = time.time() if now is None else now
        first = [{"id": 1, "secret": secrets.token_hex(32), "created": created, "retired": None}]
        store.add(KEYS, json.dumps(first))  # another process may win the race: re-read
        raw = store.get(KEYS) or json.dumps(first)
    keys = json.loads(raw)
    assert isinstance(keys, list)
    return keys


def stored_keys(store: StateStore) -> list[dict[str, object]]:
    """The keys kept, without making the first one: no key, no tag to accept (a bounce checked
    before anything was signed, or ``manage.py scan``, writes nothing)."""
    raw = store.get(KEYS)
    keys = json.loads(raw) if raw else []
    assert isinstance(keys, list)
    return keys


def rotate_keys(store: StateStore, now: float | None = None) -> int:
    """Start a new signing key; the current one is retired now. Returns the new key's id, or
    the current one's when no id is free (see below): the rotation is then skipped.

    The new id is the one after the current key's (1..9, a single digit in the tag), skipping
    ids of keys still kept, so two stored keys never share an id. A retired key is kept
    ``KEEP_RETIRED_DAYS``: every tag it made has expired by then (``validity_days`` is at most
    30), whatever ``grace_days`` the policy sets (:func:`verify` applies the grace). Only keys
    past that are dropped; when eight retired keys are all younger (rotation more often than
    every four days), no id is free and the current key stays."""
    now = time.time() if now is None else now
    keys = [k for k in load_keys(store, now)
            if k.get("retired") is None or now - float(str(k["retired"])) <= KEEP_RETIRED_DAYS * 86400]
    current = [k for k in keys if k.get("retired") is None]
    cur_id = int(str(current[-1]["id"])) if current else 0
    used = {int(str(k["id"])) for k in keys}
    free = [i for i in (((cur_id + n - 1) % 9) + 1 for n in range(1, 10)) if i not in used]
    if not free:
        log.warning("BATV key rotation skipped: all nine key ids are still in use")
        return cur_id
    for k in keys:
        if k.get("retired") is None:
            k["retired"] = now
    keys.append({"id": free[0], "secret": secrets.token_hex(32), "created": now, "retired": None})
    store.set(KEYS, json.dumps(keys))
    return free[0]


def _mac(secret: str, kid: int, ddd: str, address: str) -> str:
    msg = f"{kid}{ddd}{address.lower()}".encode("utf-8", "surrogateescape")
    return hmac.new(bytes.fromhex(secret), msg, hashlib.sha1).hexdigest()[:6]


TAG_LENGTH = len("prvs=KDDDSSSSSS=")
MAX_LOCAL_PART = 64  # octets (RFC 5321 4.5.3.1.1)


def signable(address: str) -> bool:
    """Whether a tag can go in front of the address: not for a quoted local part (the tag would
    make it invalid syntax) nor one whose tagged form would pass RFC 5321's 64 octets (remote
    servers refuse such a sender, and the mail would not be delivered). Such senders go out
    unsigned, and a bounce to them is not refused for want of a tag."""
    local = address.strip().strip("<>").rpartition("@")[0]
    return not local.startswith('"') and len(local.encode("utf-8", "surrogateescape")) + TAG_LENGTH <= MAX_LOCAL_PART


# The keys this process last read, and when: signing goes on with them through a short outage
# of the store (a Redis restart), since mail that goes out unsigned has its bounce refused later
KEY_CACHE_S = 3600.0
_last_keys: tuple[float, list[dict[str, object]]] | None = None


def signing_keys(store: StateStore, now: float) -> list[dict[str, object]]:
    """The stored keys (made on first use); when the store cannot be read, the ones this process
    read within ``KEY_CACHE_S``, else the store's error. A key rotated meanwhile by another
    process is retired, and verifies through its grace period."""
    global _last_keys
    try:
        keys = load_keys(store, now)
    except (StoreError, OSError, ValueError):
        cached = _last_keys
        if cached is not None and 0 <= now - cached[0] <= KEY_CACHE_S:
            log.warning("backscatter: BATV keys cannot be read: signing with the keys read %.0f s ago",
                        now - cached[0])
            return cached[1]
        raise
    _last_keys = (now, keys)
    return keys


def sign(address: str, store: StateStore, validity_days: int = 7, now: float | None = None) -> str:
    now = time.time() if now is None else now
    if not address or "@" not in address or _TAG.match(address) or not signable(address):
        return address
    current = [k for k in signing_keys(store, now) if k.get("retired") is None]
    key = current[-1]
    ddd = f"{(_day(now) + validity_days) % 1000:03d}"
    kid = int(str(key["id"]))
    return f"prvs={kid}{ddd}{_mac(str(key['secret']), kid, ddd, address)}={address}"


def verify(tagged: str, store: StateStore | None, s: BackscatterSettings, now: float | None = None,
           keys: list[dict[str, object]] | None = None) -> str | None:
    """The original address when ``tagged`` carries a valid, unexpired tag, else None.
    ``keys``: the stored keys, read once by a caller checking several addresses (``store`` is
    then not read and may be None)."""
    now = time.time() if now is None else now
    m = _TAG.match(tagged.strip().strip("<>"))
    if not m:
        return None
    kid, ddd, mac, address = int(m.group(1)), m.group(2), m.group(3).lower(), m.group(4)
    # days until expiry, modulo 1000: 0..30 means not expired. Not validity_days: the expiry
    # day is under the MAC, so a tag further out was made by us under a longer validity_days,
    # and lowering the setting must not refuse the bounces of mail already sent with it
    left = (int(ddd) - _day(now)) % 1000
    if left > MAX_VALIDITY_DAYS:
        return None
    if keys is None:
        assert store is not None, "verify needs the store or the keys"
        keys = stored_keys(store)
    for k in keys:
        if int(str(k["id"])) != kid:
            continue
        retired = k.get("retired")
        # the grace counts days, as the tag's expiry does: a key retired on day R verifies
        # through day R + grace_days, so a grace of validity_days covers every tag it made
        if retired is not None and _day(now) > _day(float(str(retired))) + s.grace_days:
            continue
        if hmac.compare_digest(_mac(str(k["secret"]), kid, ddd, address), mac):
            return address
    return None


def unknown_key(tagged: str, store: StateStore | None, s: BackscatterSettings, now: float | None = None,
                keys: list[dict[str, object]] | None = None) -> bool:
    """Whether ``tagged`` carries a well-formed, unexpired tag that no stored key can judge: no
    key is stored, or the tag was made before the oldest stored key existed. Keys in a store
    that lost them (a Redis restart without persistence, eviction, a reset) come back new with
    the next signed message; bounces of mail signed before must not be refused for it."""
    now = time.time() if now is None else now
    m = _TAG.match(tagged.strip().strip("<>"))
    if not m:
        return False
    left = (int(m.group(2)) - _day(now)) % 1000
    if left > s.validity_days:
        return False  # expired: judged like any other
    if keys is None:
        assert store is not None, "unknown_key needs the store or the keys"
        keys = stored_keys(store)
    if not keys:
        return True
    signed_day = _day(now) + left - s.validity_days  # (as signed with this validity)
    # tags carry days, not times: a tag of the day the keys were made again may be one signed
    # that morning, before the loss, so that day counts as before the keys
    return signed_day <= min(_day(float(str(k.get("created") or now))) for k in keys)


def strip_tag(address: str) -> str:
    """``prvs=...=user@dom`` -> ``user@dom`` (no validation): for recipient rewriting."""
    m = _TAG.match(address.strip().strip("<>"))
    return m.group(4) if m else address


def sign_envelope_sender(ctx: MessageContext, settings: BackscatterSettings | None = None,
                         store: StateStore | None = None) -> str | None:
    """For outbound mail from a local domain: compute the signed envelope sender, record it
    in ``ctx.facts["change_sender"]`` (the front calls ``chgfrom`` with it) and return it."""
    if settings is None:
        settings = ctx.policy.settings_for("backscatter", ctx.policy_domain)
    if not settings.enabled or not settings.sign_outbound or ctx.scan_mode:
        return None
    if ctx.direction is not Direction.OUTBOUND or not ctx.mail_from:
        return None
    if not ctx.policy.is_local_domain(ctx.sender_domain):
        return None
    signed = sign(ctx.mail_from, store or default_store(), settings.validity_days)
    if signed != ctx.mail_from:
        ctx.facts["change_sender"] = signed
        return signed
    return None


def untag_recipients(ctx: MessageContext) -> None:
    """Every local recipient with a prvs= tag is delivered to the address the tag was made for
    (``rewrite_recipients``), whatever the layer did: with the layer off (tags made while it
    was on come back for ``validity_days``), in an outbound transaction (a colleague's tagged
    address beside a remote recipient) or after it judged the tags. Nothing downstream knows a
    prvs= address: left tagged, the message was refused after acceptance and lost."""
    rewrite = ctx.facts.get("rewrite_recipients")
    rewrite = dict(rewrite) if isinstance(rewrite, dict) else {}
    for r in ctx.recipients:
        if r.is_local and r.address not in rewrite and _TAG.match(r.address.strip().strip("<>")):
            rewrite[r.address] = strip_tag(r.address)
    if rewrite:
        ctx.facts["rewrite_recipients"] = rewrite


def exempt_set(settings: BackscatterSettings) -> set[str]:
    """``exempt_recipients`` as compared: a local part ("postmaster", "postmaster@") matches in
    every domain, an address only itself, "@domain" every address of the domain."""
    return {e.strip().lower().rstrip("@").rstrip(".") for e in settings.exempt_recipients}


def refusable(address: str, tag: str | None, exempt: set[str]) -> bool:
    """Whether a DSN to this local recipient is refused: ``tag`` is how its tag was judged
    (``valid``, ``unknown`` key, ``invalid``) or None without a tag."""
    if tag in ("valid", "unknown"):
        return False
    lp, dom = split_address(strip_tag(address))
    if lp.lower() in exempt or f"{lp.lower()}@{dom}" in exempt or f"@{dom}" in exempt:
        return False  # postmaster and abuse receive bounces, tagged (even badly) or not
    # an address whose mail went out unsigned (signable): a bounce to it carries no tag
    return tag is not None or signable(address)


def judge_tag(address: str, keys: list[dict[str, object]], settings: BackscatterSettings) -> str | None:
    if not _TAG.match(address.strip().strip("<>")):
        return None
    if verify(address, None, settings, keys=keys):
        return "valid"
    return "unknown" if unknown_key(address, None, settings, keys=keys) else "invalid"


MIXED_BOUNCE_DEFER = Reply("452", "4.5.3", "Bounce recipients with and without a valid BATV tag "
                                           "go in separate transactions, please send again")
BOUNCE_CLASS = "bounce_recipients"  # fact: "refused" or "delivered", fixed by the first recipient


def bounce_class(ctx: MessageContext, address: str, is_local: bool) -> str | None:
    """At RCPT of an inbound transaction with the null sender, when unsigned bounces are
    refused: whether a DSN to this recipient would be ``refused`` or ``delivered``. The
    transaction defers (452 4.5.3, :data:`MIXED_BOUNCE_DEFER`) a recipient of the other kind
    than the ones accepted before, so that a bounce for a valid tag and one for a forged sender
    are never one message, refused or delivered as a whole; the client sends the deferred
    ones again in a transaction of their own (RFC 5321 4.5.3.1.10). None when nothing is
    judged (a sender, a remote recipient, an internal client, the layer off or scoring only)."""
    if ctx.mail_from or not is_local or ctx.is_internal_sender:
        return None
    settings = ctx.policy.settings_for("backscatter", ctx.policy_domain)
    if not settings.acts or not settings.refuse_unsigned_bounces:
        return None
    keys: list[dict[str, object]] = []
    if _TAG.match(address.strip().strip("<>")):
        try:
            keys = transaction_keys(ctx)
        except (StoreError, OSError, ValueError) as e:  # as at the end of the message: judged
            log.warning("backscatter: BATV keys cannot be read at RCPT: %s", e)  # as keys lost
    tag = judge_tag(address, keys, settings)
    return "refused" if refusable(address, tag, exempt_set(settings)) else "delivered"


_KEYS_FACT = "batv_keys"


def transaction_keys(ctx: MessageContext) -> list[dict[str, object]]:
    """The stored keys, read once per transaction: the first tagged recipient reads them at
    RCPT, the others and the end of the message judge with the same keys (one store read per
    transaction, not one per tagged recipient and one more at the end; and a key rotated in
    between cannot judge a tag one way at RCPT and the other at the end). A read that failed is
    not kept: the next one tries again."""
    keys = ctx.facts.get(_KEYS_FACT)
    if keys is None:
        keys = ctx.facts[_KEYS_FACT] = stored_keys(default_store())
    return keys


def is_dsn(ctx: MessageContext) -> bool:
    ctype = (ctx.header("Content-Type") or "").lower()
    if "multipart/report" in ctype and "delivery-status" in ctype:
        return True
    frm = (ctx.header("From") or "").lower()
    # (postmaster@ as a whole local part: not webpostmaster@)
    return bool(re.search(r"mailer-daemon|(?<![\w.+-])postmaster@|mail delivery (sub)?system", frm))


class BackscatterLayer(Layer[BackscatterSettings]):
    id = "backscatter"
    stage = Stage.EOM
    fail_mode = FailMode.UNKNOWN  # key store down: no signing, no refusal
    Settings = BackscatterSettings
    title = "Backscatter (BATV)"
    description = "BATV signing of outbound senders; unsigned bounces to local users refused"

    def check(self, ctx: MessageContext, settings: BackscatterSettings) -> LayerFindings:
        try:
            signed = sign_envelope_sender(ctx, settings)  # (opens the store only to sign)
        except (StoreError, OSError, ValueError) as e:
            if settings.refuse_unsigned_bounces:
                # sent unsigned, its bounce would be refused here later: the sender never
                # learns that the mail was not delivered. Deferred instead (4xx)
                from gateway_milter.pipeline.runner import LayerFailure

                raise LayerFailure(self.id, f"BATV keys cannot be read to sign the sender: {type(e).__name__}: {e}") from e
            log.warning("backscatter: BATV keys cannot be read, sender not signed: %s", e)
            ctx.add_trace(self.id, "error", f"keys cannot be read, sender not signed: {type(e).__name__}: {e}")
            signed = None
        if signed:
            # an outbound transaction's tagged local recipient (a colleague's prvs= address) is
            # untagged by untag_recipients, whatever the layer found
            return LayerFindings({"signed_sender": signed}, (self.symbol("BATV_SIGNED", 0.0, signed),))
        local = [r for r in ctx.recipients if r.is_local]
        valid: dict[str, str] = {}
        unknown: dict[str, str] = {}  # tags no stored key can judge (keys lost since): not refused
        invalid: dict[str, str] = {}  # tags that do not verify (expired, forged): a DSN is refused
        tags: dict[str, str] = {}  # tagged recipient -> judge_tag's answer
        store_error = ""
        keys: list[dict[str, object]] | None = None
        for r in local:  # a tag is taken off whatever the sender and content: auto-replies and
            # replies to the Return-Path carry it too, and nothing downstream knows the address
            if _TAG.match(r.address.strip().strip("<>")):
                if keys is None:
                    try:
                        keys = transaction_keys(ctx)  # once for all the recipients
                    except (StoreError, OSError, ValueError) as e:
                        # keys that cannot be read judge no tag: as keys lost (unknown_key), the
                        # recipient is untagged and delivered, not left with a prvs= address
                        # nothing downstream knows (its bounce of a bounce would be dropped)
                        keys = []
                        store_error = f"{type(e).__name__}: {e}"
                        log.warning("backscatter: BATV keys cannot be read, tags not verified: %s", store_error)
                        ctx.add_trace(self.id, "error", f"keys cannot be read: {store_error}")
                tag = tags[r.address] = judge_tag(r.address, keys, settings) or "invalid"
                {"valid": valid, "unknown": unknown, "invalid": invalid}[tag][r.address] = strip_tag(r.address)
        unsigned: list[str] = []
        facts: dict[str, object] = {"valid_tags": valid, "unknown_key": unknown, "unsigned": unsigned}
        if store_error:
            facts["store_error"] = store_error
        # only inbound bounces are judged: a DSN from a trusted network's server or an
        # authenticated client (the bounce of a local user's mail, never signed) is no backscatter
        judged = (not ctx.mail_from and settings.refuse_unsigned_bounces and bool(local)
                  and not ctx.is_internal_sender)
        if not ctx.mail_from and local and ctx.is_internal_sender:
            facts["bounce"] = "internal sender"
        if judged and settings.only_dsn and not is_dsn(ctx):
            judged = False
            facts["bounce"] = "not a DSN"
        exempt = exempt_set(settings)
        for r in local if judged else []:
            if refusable(r.address, tags.get(r.address), exempt):
                unsigned.append(r.address)
        symbols = []
        if valid or unknown or invalid:
            # delivered to the address the tag was made for: the transaction swaps the
            # recipients (delrcpt + addrcpt), since nothing downstream knows prvs= addresses.
            # A tag that does not verify too: a DSN to it is refused (unsigned), but a message
            # that is delivered (an auto-reply or a reply to an expired tag, mode score) would
            # otherwise be refused downstream after acceptance and lost
            ctx.facts["rewrite_recipients"] = {**invalid, **valid, **unknown}
        if valid:
            symbols.append(self.symbol("BATV_VALID_BOUNCE", 0.0, ", ".join(valid)))
        if unknown:
            symbols.append(self.symbol("BATV_UNKNOWN_KEY", 0.0, ", ".join(unknown)))
        if unsigned:
            symbols.append(self.symbol("BACKSCATTER_UNSIGNED_BOUNCE", 0.0, ", ".join(unsigned)))
        return LayerFindings(facts, tuple(symbols))

    def policy_rules(self, settings: BackscatterSettings) -> list[PolicyRule]:
        reply = Reply("550", "5.7.1", settings.reject_text)
        return [PolicyRule("backscatter", Outcome.reject(reply, "bounce without a valid BATV tag"),
                           ("BACKSCATTER_UNSIGNED_BOUNCE",))]
