"""Anti-spam state in the state store as administrators see it (docs/ui.md, "Anti-spam
state"): what each Bayes scope learned, and the greylisting state. The page
(webadmin/views/antispam.py) and the REST API (webadmin/api_antispam.py) read and change it only
through these functions.

- Bayes scopes are named as the layer names them (gateway_milter/layers/bayes.py ``scopes_for``):
  ``global``, ``dom:<domain>``, ``user:<address>``; their keys are those of
  gateway_milter/antispam/bayes.py (``scope_key``, ``weight_key``). A global administrator
  sees and wipes every scope; a domain administrator the ``dom:`` scopes of their domains and
  the ``user:`` scopes of addresses in them (alias domains included), never ``global``, which
  every tenant reads. Other roles: none. A scope the actor may not administer answers 404,
  like another tenant's object (webadmin/access.py).
- Greylisting (gateway_milter/layers/greylist.py ``decide``) is shared by every domain: global
  administrators only. Triplet keys are hashes, so only their number is shown; client networks
  (``grey:n:<network>``) are listed with their pass count and the time left.

Everything here lists keys with ``scan_keys``, which the store contract keeps for
administration: never on the message path, always with a limit, and the limit is reported
("at least N") instead of counted past.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.http import Http404

from gateway_milter.antispam.bayes import BayesClassifier, scope_key, weight_key
from gateway_milter.layers.greylist import NETWORK_STEP_KEY
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store import StateStore, batch_writes, default_store
from webadmin.access import Principal

log = logging.getLogger("bulwark.antispam")

USER_SCOPE_LIMIT = 500  # user scopes listed at most (the page and the API say when there are more)
USER_SCOPE_SCAN = 20_000  # user-scope keys a domain administrator's listing reads to find theirs
DOMAIN_SCOPE_SCAN = 5_000
GREY_COUNT_LIMIT = 10_000  # triplet keys counted at most per kind
GREY_NETWORK_LIMIT = 500  # client networks listed at most
CLEAR_BATCH = 500  # keys deleted per store call when clearing greylisting
CLEAR_MAX_ROUNDS = 10_000  # bounds the clearing loop (5 million keys) whatever the store answers

PENDING, PASSED, NETWORK = "grey:t:", "grey:p:", "grey:n:"
MAX_SCOPE = 500  # the longest key prefix (``bayes2g:``) keeps its keys within the store's 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DOMAIN = re.compile(r"[^\s@]+")


class StateInputError(ValueError):
    """A scope or network that is not well formed (the API answers 400 with this text)."""


# -- scopes ----------------------------------------------------------------------------------------
def parse_scope(text: Any) -> str:
    """``text`` as a scope name, exactly as the store keys it; raises :class:`StateInputError`
    for anything else. The local part of a user scope is kept as the milter wrote it (the
    recipient's address in lower case, quoted local parts included), so every listed scope can
    be named here (``bayes train --scope`` then names a domain scope by its main domain)."""
    if not isinstance(text, str) or not text.strip():
        raise StateInputError("give a scope: global, dom:DOMAIN or user:ADDRESS")
    s = text.strip()
    if s == "global":
        return s
    kind, _, rest = s.partition(":")
    if len(s) <= MAX_SCOPE and not _CONTROL.search(s):
        if kind == "dom" and _DOMAIN.fullmatch(rest):
            return s
        local, at, dom = rest.rpartition("@")
        if kind == "user" and at and local and _DOMAIN.fullmatch(dom):
            return s
    raise StateInputError(f"{s[:80]!r} is not a scope: global, dom:DOMAIN or user:ADDRESS")


def scope_domain(scope: str, snapshot: PolicySnapshot) -> str | None:
    """The configured domain a scope belongs to (an alias domain's address: its domain), else
    the domain as written; None for ``global``."""
    if scope == "global":
        return None
    name = scope[4:] if scope.startswith("dom:") else scope.rpartition("@")[2]
    name = name.lower().rstrip(".")
    return snapshot.canonical_domain(name) or name


def may_administer_scope(p: Principal, scope: str, snapshot: PolicySnapshot) -> bool:
    if p.is_global:
        return True
    if p.role != "domain_admin" or scope == "global":
        return False
    return scope_domain(scope, snapshot) in p.domains


def access_bayes_scope(p: Principal, text: Any, snapshot: PolicySnapshot) -> str:
    """The scope named by ``text`` if ``p`` administers it; a malformed name raises
    :class:`StateInputError`, another tenant's scope (or ``global`` for a domain
    administrator) ``Http404``."""
    scope = parse_scope(text)
    if not may_administer_scope(p, scope, snapshot):
        raise Http404("no such scope")
    return scope


@dataclass(frozen=True)
class ScopeState:
    scope: str
    spam_learned: int
    ham_learned: int
    tokens: int  # features (and sender keys) with counts
    model_spam_steps: int  # the token model's steps toward each class
    model_ham_steps: int
    min_learned: int  # of each class, from the Bayes settings in force for the scope's domain
    in_use: bool  # the layer reads it: enough of each class, and its kind of scope switched on
    note: str  # why it is not in use ("" when it is)


@dataclass(frozen=True)
class BayesListing:
    scopes: list[ScopeState]
    user_scopes_capped: bool  # more user scopes exist than the user_scope_limit listed
    user_scope_limit: int


def _scan_scopes(store: StateStore, kind: str, limit: int) -> tuple[list[str], bool]:
    """Scopes of one kind ("dom:" or "user:") that have counts or a token model; and whether
    the scan stopped at its limit."""
    found: set[str] = set()
    hit = False
    for key_of in (scope_key, weight_key):
        prefix = key_of(kind)
        keys = store.scan_keys(prefix, limit)
        hit = hit or len(keys) >= limit
        found.update(k[len(key_of("")):] for k in keys)
    return sorted(found), hit


def visible_scopes(p: Principal, snapshot: PolicySnapshot, store: StateStore | None = None) -> tuple[list[str], bool]:
    """The learned scopes ``p`` administers, global first; user scopes at most USER_SCOPE_LIMIT
    (and whether there were more)."""
    store = store or default_store()
    if not p.manages_settings:
        return [], False
    out: list[str] = []
    if p.is_global and (store.counter_fields(scope_key("global")) or store.counter_fields(weight_key("global"))):
        out.append("global")
    doms, _ = _scan_scopes(store, "dom:", DOMAIN_SCOPE_SCAN)
    out += [s for s in doms if may_administer_scope(p, s, snapshot)]
    # a global administrator's first USER_SCOPE_LIMIT are any; a domain administrator's are
    # found among a larger read (user keys cannot be listed by domain: the domain ends the key)
    users, hit = _scan_scopes(store, "user:", USER_SCOPE_LIMIT + 1 if p.is_global else USER_SCOPE_SCAN)
    mine = [s for s in users if may_administer_scope(p, s, snapshot)]
    capped = len(mine) > USER_SCOPE_LIMIT or (hit and not p.is_global)
    return out + mine[:USER_SCOPE_LIMIT], capped


def bayes_state(scopes: list[str], snapshot: PolicySnapshot, store: StateStore | None = None) -> list[ScopeState]:
    """Counts of each scope: the learned messages and model steps in one store round trip, the
    token count from the size of the counts' hash (its fields are the tokens, ``#s``/``#h``
    and one ``m<digest>`` field per learned message)."""
    store = store or default_store()
    if not scopes:
        return []
    got = store.counters([(scope_key(s), ["#s", "#h"]) for s in scopes]
                         + [(weight_key(s), ["#s", "#h"]) for s in scopes])
    out = []
    for i, scope in enumerate(scopes):
        (ns, nh), (ms, mh) = got[i], got[len(scopes) + i]
        fields = store.counter_fields(scope_key(scope))
        tokens = max(0, fields - (ns > 0) - (nh > 0) - ns - nh)
        settings = snapshot.settings_for("bayes", scope_domain(scope, snapshot))
        note = ""
        if scope.startswith("dom:") and not settings.per_domain:
            note = "per-domain scopes are off"
        elif scope.startswith("user:") and not settings.per_user:
            note = "per-user scopes are off"
        elif ns < settings.min_learned or nh < settings.min_learned:
            note = f"needs {settings.min_learned} of each class"
        out.append(ScopeState(scope, ns, nh, tokens, ms, mh, settings.min_learned, not note, note))
    return out


def bayes_listing(p: Principal, snapshot: PolicySnapshot, store: StateStore | None = None) -> BayesListing:
    store = store or default_store()
    scopes, capped = visible_scopes(p, snapshot, store)
    return BayesListing(bayes_state(scopes, snapshot, store), capped, USER_SCOPE_LIMIT)


def do_wipe_bayes_scope(scope: str, actor: str, store: StateStore | None = None) -> bool:
    """Forget everything ``scope`` learned (counts and token model), as ``bayes forget --wipe``
    does; ``scope`` comes from :func:`access_bayes_scope`. Returns whether there was anything.
    Recorded in the log (``bulwark.antispam``) with the actor."""
    store = store or default_store()
    with batch_writes():  # a big scope's delete may wait for the milters' writes, as the CLI's does
        n = BayesClassifier(store).wipe(scope)
    log.info("%s wiped Bayes scope %s (%d keys)", actor or "-", scope, n)
    return n > 0


# -- greylisting -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyCount:
    count: int
    at_least: bool  # the count stopped at its limit


@dataclass(frozen=True)
class NetworkState:
    network: str
    passes: int
    ttl: int | None  # seconds left; None without expiry
    auto_pass: bool  # passes reached the global auto_pass_after: the whole network passes


@dataclass(frozen=True)
class GreylistState:
    pending: KeyCount
    passed: KeyCount
    networks: list[NetworkState]
    networks_capped: bool
    auto_pass_after: int
    mode: str = "off"  # the global greylisting mode (on, off, ...)
    # domains whose own setting differs from it: [domain, mode], by name
    domain_modes: list[list[str]] = field(default_factory=list)


def _count(store: StateStore, prefix: str) -> KeyCount:
    n = len(store.scan_keys(prefix, GREY_COUNT_LIMIT))
    return KeyCount(n, n >= GREY_COUNT_LIMIT)


def greylist_state(snapshot: PolicySnapshot, store: StateStore | None = None) -> GreylistState:
    """Counts of pending and passed triplets and the client networks, most passes first."""
    store = store or default_store()
    glob = snapshot.settings_for("greylist", None)
    auto = glob.auto_pass_after
    # (each domain once: aliases share their domain's policy)
    names = sorted(snapshot.domain_names)
    domain_modes = [[d, m] for d in names if (m := snapshot.settings_for("greylist", d).mode) != glob.mode]
    keys = store.scan_keys(NETWORK, GREY_NETWORK_LIMIT)
    nets = []
    for k in keys:
        raw, left = store.get(k), store.ttl(k)
        if raw is None:
            continue  # expired since the scan
        try:
            passes = int(raw)
        except ValueError:
            passes = 0
        nets.append(NetworkState(k[len(NETWORK):], passes, None if left is None else int(left),
                                 bool(auto) and passes >= auto))
    nets.sort(key=lambda n: (-n.passes, n.network))
    return GreylistState(_count(store, PENDING), _count(store, PASSED), nets, len(keys) >= GREY_NETWORK_LIMIT, auto,
                         glob.mode, domain_modes)


def parse_network(text: Any) -> str:
    """A client network as greylisting keys it (net/networks.py ``client_network``: e.g.
    ``198.51.100.0/24``, or ``none`` for a client without an address)."""
    if not isinstance(text, str) or not text.strip():
        raise StateInputError("give a network, e.g. 198.51.100.0/24")
    t = text.strip()
    if t == "none":
        return t
    try:
        return str(ipaddress.ip_network(t, strict=False))
    except ValueError:
        raise StateInputError(f"{t[:80]!r} is not an IP network") from None


def do_remove_greylist_network(network: str, actor: str, store: StateStore | None = None) -> None:
    """Forget one client network's pass count (its auto-pass); the triplets stay. ``network``
    from :func:`parse_network`; ``Http404`` when the store has none for it."""
    store = store or default_store()
    if not store.delete(NETWORK + network):
        raise Http404("no such network")
    store.delete(NETWORK_STEP_KEY + network)  # (its next pass counts at once)
    log.info("%s removed greylisting network %s", actor or "-", network)


def do_clear_greylist(actor: str, store: StateStore | None = None) -> int:
    """Forget all greylisting state (pending and passed triplets, networks): every sender is
    greylisted again on its next attempt. Returns the number of entries deleted (triplets and
    networks; the networks' hourly markers go too, uncounted)."""
    store = store or default_store()
    n = 0
    with batch_writes():
        for prefix in (PENDING, PASSED, NETWORK, NETWORK_STEP_KEY):
            for _ in range(CLEAR_MAX_ROUNDS):
                keys = store.scan_keys(prefix, CLEAR_BATCH)
                if not keys:
                    break
                deleted = store.delete(*keys)
                n += deleted if prefix != NETWORK_STEP_KEY else 0
                if not deleted:  # listed but already gone (expired meanwhile): do not spin on them
                    break
    log.info("%s cleared greylisting state (%d keys)", actor or "-", n)
    return n
