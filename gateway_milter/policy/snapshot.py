"""The policy snapshot: the whole configuration as one validated, immutable object.

The same document is the ``policy export``/``policy import`` YAML file (docs/policy/file.md)
and the unit the milter loads: Django compiles it from the database on every change
(``publish``), the milter polls the published version and swaps its snapshot atomically.
Nothing on the hot path queries a database.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from gateway_milter import layers
from gateway_milter.layers.base import BaseSettings, PolicyRule, SettingsError, settings_from_dict
from gateway_milter.policy.lists import CompiledLists, IPAddress, ListEntry, validate_entry

FORMAT_VERSION = 1
DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
    r"|^localhost$|^[a-z0-9-]+\.(test|example|invalid|localhost)$"
)
TOP_KEYS = ("format", "gateway", "settings", "domains", "trusted_networks", "lists", "scripts", "users")
GATEWAY_KEYS: dict[str, type] = {
    "hostname": str,
    "authserv_id": str,
    "fail_mode": str,  # what a policy runtime error does: tempfail (default) or accept
    "layer_order": list,  # order of the system scripts (layer ids); unlisted layers follow
}

# Optional validator for Sieve scripts, registered by gateway_milter.sieve when present.
script_validator: Any = None


@dataclass(frozen=True, slots=True)
class DomainPolicy:
    name: str
    settings: dict[str, dict[str, Any]]
    mail_servers: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScriptEntry:
    name: str
    source: str
    domain: str | None = None
    position: str = "after"  # "before:<layer>" / "after:<layer>" / "after" (end) / "before" (start)
    enabled: bool = True


class PolicySnapshot:
    """Immutable after construction; safe to share between milter threads."""

    def __init__(self, doc: dict[str, Any], version: int = 0) -> None:
        self.version = version
        self.doc = doc
        gw = doc.get("gateway") or {}
        self.hostname: str = gw.get("hostname", "bulwark.localdomain")
        self.authserv_id: str = gw.get("authserv_id", self.hostname)
        self.fail_mode: str = gw.get("fail_mode", "tempfail")
        first = [lid for lid in gw.get("layer_order", []) if lid in layers.REGISTRY]
        self.layer_order: list[str] = first + [lid for lid in layers.REGISTRY if lid not in first]
        self.global_settings: dict[str, dict[str, Any]] = doc.get("settings") or {}
        self.domains: dict[str, DomainPolicy] = {}
        for d in doc.get("domains") or []:
            dp = DomainPolicy(d["name"], d.get("settings") or {}, tuple(d.get("mail_servers") or ()),
                              tuple(d.get("aliases") or ()))
            self.domains[dp.name] = dp
            for alias in dp.aliases:
                self.domains.setdefault(alias, dp)
        # each domain once, by its main name (an alias domain's policy is its domain's)
        self.domain_names: frozenset[str] = frozenset(dp.name for dp in self.domains.values())
        self.trusted_networks = [ipaddress.ip_network(n, strict=False) for n in doc.get("trusted_networks") or []]
        self.lists = CompiledLists([ListEntry(**e) for e in doc.get("lists") or []],
                                   {a: dp.name for a, dp in self.domains.items() if a != dp.name})
        # domains with message-level list entries of their own (sender, host, IP: judged once
        # per message with the message's domain) need a policy group of their own, or another
        # tenant's recipients would share the message and its list verdict
        self._list_domains: frozenset[str] = frozenset(
            d for e in self.lists.entries if e.domain and not e.recipient and e.kind != "recipient"
            if (d := self.canonical_domain(e.domain)))
        self.scripts = [ScriptEntry(**s) for s in doc.get("scripts") or []]
        # addresses whose users switched anti-spam off (My Account); antivirus still applies
        self.antispam_disabled: frozenset[str] = frozenset(
            a for u in doc.get("users") or [] if u.get("disable_antispam") for a in u["addresses"])
        self._settings_cache: dict[tuple[str, str | None], BaseSettings] = {}
        self._rules_cache: dict[str | None, list[tuple[str, PolicyRule]]] = {}
        self._lock = threading.Lock()
        self.compiled: dict[str, Any] = {}  # per-snapshot compiled artefacts (Sieve programs, ...)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> PolicySnapshot:
        return cls({"format": FORMAT_VERSION}, version=0)

    @classmethod
    def from_document(cls, doc: Any, version: int = 0) -> PolicySnapshot:
        return cls(validate_document(doc), version)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.doc, sort_keys=True).encode()).hexdigest()[:16]

    # -- lookups ------------------------------------------------------------------------------
    def is_local_domain(self, domain: str) -> bool:
        return domain.lower().rstrip(".") in self.domains

    def canonical_domain(self, domain: str | None) -> str | None:
        if not domain:
            return None
        dp = self.domains.get(domain.lower().rstrip("."))
        return dp.name if dp else None

    def is_trusted_ip(self, ip: IPAddress | None) -> bool:
        if ip is None:
            return False
        return any(ip.version == n.version and ip in n for n in self.trusted_networks)

    def settings_for(self, layer_id: str, domain: str | None = None) -> Any:
        # Cached under the name as asked (hot path: many calls per message), built once under
        # the canonical name.
        s = self._settings_cache.get((layer_id, domain))
        if s is None:
            dom = self.canonical_domain(domain)
            s = self._settings_cache.get((layer_id, dom))
            if s is None:
                s = build_settings(layer_id, self.global_settings.get(layer_id),
                                   self.domains[dom].settings.get(layer_id) if dom else None)
                self._settings_cache[(layer_id, dom)] = s
            if dom is not None:  # only local names: the cache stays bounded whatever mail says
                self._settings_cache[(layer_id, domain)] = s
        return s

    def policy_group(self, domain: str | None) -> str:
        """Domains whose effective settings and message-level list entries are identical share a
        group: one message may carry recipients of one group only (others are deferred with 452
        at RCPT)."""
        dom = self.canonical_domain(domain)
        if dom is None or (not self.domains[dom].settings and dom not in self._list_domains
                           and not any(s.domain == dom for s in self.scripts)):
            return "global"
        return "domain:" + dom

    def system_rules(self, domain: str | None) -> list[tuple[str, PolicyRule]]:
        dom = self.canonical_domain(domain)
        rules = self._rules_cache.get(dom)
        if rules is None:
            rules = []
            present = set(layers.available())
            for layer_id in (lid for lid in self.layer_order if lid in present):
                settings = self.settings_for(layer_id, dom)
                if not settings.acts:
                    continue
                for r in layers.get(layer_id).policy_rules(settings):
                    rules.append((layer_id, r))
            self._rules_cache[dom] = rules
        return rules


def build_settings(layer_id: str, global_raw: Any, domain_raw: Any) -> Any:
    layer = layers.get(layer_id)
    merged = dict(global_raw or {})
    merged.update(domain_raw or {})
    return settings_from_dict(layer.Settings, merged, f"settings.{layer_id}.")


# -- validation of the whole document -----------------------------------------------------------
def validate_document(doc: Any) -> dict[str, Any]:
    """Check everything, return a normalised copy. Raises SettingsError naming the bad field."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise SettingsError("(top)", "the policy file must be a mapping")
    for k in doc:
        if k not in TOP_KEYS:
            raise SettingsError(str(k), f"unknown section (known: {', '.join(TOP_KEYS)})")
    fmt = doc.get("format", FORMAT_VERSION)
    if fmt != FORMAT_VERSION:
        raise SettingsError("format", f"unsupported format {fmt!r} (this version reads {FORMAT_VERSION})")
    out: dict[str, Any] = {"format": FORMAT_VERSION}

    gw = doc.get("gateway") or {}
    if not isinstance(gw, dict):
        raise SettingsError("gateway", "must be a mapping")
    for k, v in gw.items():
        if k not in GATEWAY_KEYS:
            raise SettingsError(f"gateway.{k}", "unknown setting")
        if not isinstance(v, GATEWAY_KEYS[k]):
            raise SettingsError(f"gateway.{k}", f"must be a {GATEWAY_KEYS[k].__name__}")
    if gw.get("fail_mode", "tempfail") not in ("tempfail", "accept"):
        raise SettingsError("gateway.fail_mode", "must be tempfail or accept")
    order = gw.get("layer_order", [])
    for i, lid in enumerate(order):
        if lid not in layers.REGISTRY:
            raise SettingsError(f"gateway.layer_order[{i}]", f"unknown layer {lid!r}")
        if lid in order[:i]:
            raise SettingsError(f"gateway.layer_order[{i}]", f"layer {lid!r} is listed twice")
    out["gateway"] = dict(gw)

    out["settings"] = _validate_settings(doc.get("settings"), "settings")

    domains = doc.get("domains") or []
    if not isinstance(domains, list):
        raise SettingsError("domains", "must be a list")
    seen: set[str] = set()
    out["domains"] = []
    for i, d in enumerate(domains):
        path = f"domains[{i}]"
        if isinstance(d, str):
            d = {"name": d}
        if not isinstance(d, dict):
            raise SettingsError(path, "must be a mapping with a name")
        for k in d:
            if k not in ("name", "settings", "mail_servers", "aliases"):
                raise SettingsError(f"{path}.{k}", "unknown field")
        name = _domain_name(d.get("name"), f"{path}.name")
        aliases = [_domain_name(a, f"{path}.aliases[{j}]") for j, a in enumerate(d.get("aliases") or [])]
        for n in [name, *aliases]:
            if n in seen:
                raise SettingsError(f"{path}.name", f"domain {n!r} is listed twice")
            seen.add(n)
        servers = d.get("mail_servers") or []
        if not isinstance(servers, list) or not all(isinstance(s, str) and s for s in servers):
            raise SettingsError(f"{path}.mail_servers", "must be a list of host[:port] strings")
        out["domains"].append({
            "name": name,
            "settings": _validate_settings(d.get("settings"), f"{path}.settings", out["settings"], name),
            "mail_servers": servers,
            "aliases": aliases,
        })

    nets = doc.get("trusted_networks") or []
    if not isinstance(nets, list):
        raise SettingsError("trusted_networks", "must be a list")
    out["trusted_networks"] = []
    for i, n in enumerate(nets):
        try:
            out["trusted_networks"].append(str(ipaddress.ip_network(str(n), strict=False)))
        except ValueError:
            raise SettingsError(f"trusted_networks[{i}]", f"{n!r} is not an IP network") from None

    entries = doc.get("lists") or []
    if not isinstance(entries, list):
        raise SettingsError("lists", "must be a list")
    out["lists"] = []
    for i, e in enumerate(entries):
        entry = validate_entry(e, f"lists[{i}]")
        if entry.domain is not None and entry.domain not in seen:
            raise SettingsError(f"lists[{i}].domain", f"{entry.domain!r} is not a configured domain")
        out["lists"].append(entry.as_dict())

    users = doc.get("users") or []
    if not isinstance(users, list):
        raise SettingsError("users", "must be a list")
    out["users"] = []
    for i, u in enumerate(users):
        path = f"users[{i}]"
        if not isinstance(u, dict) or set(u) - {"addresses", "disable_antispam"}:
            raise SettingsError(path, "must be a mapping with addresses and disable_antispam")
        addrs = u.get("addresses")
        if not isinstance(addrs, list) or not addrs or not all(isinstance(a, str) and a.count("@") == 1 for a in addrs):
            raise SettingsError(f"{path}.addresses", "must be a non-empty list of addresses")
        flag = u.get("disable_antispam", False)
        if not isinstance(flag, bool):
            raise SettingsError(f"{path}.disable_antispam", "must be true or false")
        out["users"].append({"addresses": [a.lower() for a in addrs], "disable_antispam": flag})

    scripts = doc.get("scripts") or []
    if not isinstance(scripts, list):
        raise SettingsError("scripts", "must be a list")
    out["scripts"] = []
    names: set[str] = set()
    if scripts and script_validator is None:
        _load_script_validator()
    for i, s in enumerate(scripts):
        path = f"scripts[{i}]"
        if not isinstance(s, dict):
            raise SettingsError(path, "must be a mapping with name and source")
        for k in s:
            if k not in ("name", "source", "domain", "position", "enabled"):
                raise SettingsError(f"{path}.{k}", "unknown field")
        script_name: Any = s.get("name")
        source: Any = s.get("source")
        if not isinstance(script_name, str) or not re.match(r"^[A-Za-z0-9_.-]{1,100}$", script_name):
            raise SettingsError(f"{path}.name", "must be 1-100 letters, digits, '_', '.' or '-'")
        if script_name in names:
            raise SettingsError(f"{path}.name", f"script {script_name!r} is listed twice")
        names.add(script_name)
        if not isinstance(source, str):
            raise SettingsError(f"{path}.source", "must be the script text")
        dom = s.get("domain")
        if dom is not None and dom not in seen:
            raise SettingsError(f"{path}.domain", f"{dom!r} is not a configured domain")
        pos = s.get("position", "after")
        if not isinstance(pos, str) or not re.match(r"^(before|after)(:[a-z0-9_]+)?$", pos):
            raise SettingsError(f"{path}.position", "must be before, after, before:<layer> or after:<layer>")
        if ":" in pos and pos.split(":", 1)[1] not in layers.REGISTRY:
            raise SettingsError(f"{path}.position", f"unknown layer {pos.split(':', 1)[1]!r}")
        enabled = s.get("enabled", True)
        if not isinstance(enabled, bool):
            raise SettingsError(f"{path}.enabled", "must be true or false")
        if script_validator is not None:
            err = script_validator(source)
            if err:
                raise SettingsError(f"{path}.source", err)
        out["scripts"].append({"name": script_name, "source": source, "domain": dom, "position": pos,
                               "enabled": enabled})
    return out


def _load_script_validator() -> None:
    try:
        import gateway_milter.sieve  # noqa: F401 - registers script_validator on import
    except ImportError:
        pass


def _domain_name(v: Any, path: str) -> str:
    if not isinstance(v, str):
        raise SettingsError(path, "must be a domain name")
    d = v.strip().lower().rstrip(".")
    try:
        d = d.encode("idna").decode("ascii")
    except UnicodeError:
        raise SettingsError(path, f"{v!r} is not a valid domain name") from None
    if not DOMAIN_RE.match(d):
        raise SettingsError(path, f"{v!r} is not a valid domain name")
    return d


def _validate_settings(raw: Any, path: str, base: dict[str, dict[str, Any]] | None = None,
                       domain: str = "") -> dict[str, dict[str, Any]]:
    """The layer settings of ``raw``; a domain's (``base``: the global ones) as they are used,
    merged with the global settings (a reject_score of its own below the global quarantine_score
    would fail every message of the domain, or the whole policy's loading)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SettingsError(path, "must be a mapping of layer id to settings")
    out: dict[str, dict[str, Any]] = {}
    for layer_id, values in raw.items():
        if layer_id not in layers.REGISTRY:
            raise SettingsError(f"{path}.{layer_id}", "unknown layer")
        try:
            layer = layers.get(layer_id)
        except ImportError:
            raise SettingsError(f"{path}.{layer_id}", "layer is not available in this build") from None
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise SettingsError(f"{path}.{layer_id}", "must be a mapping")
        if base is None:
            settings_from_dict(layer.Settings, values, f"{path}.{layer_id}.")  # raises on error
        else:
            try:
                settings_from_dict(layer.Settings, {**base.get(layer_id, {}), **values}, f"{path}.{layer_id}.")
            except SettingsError as e:
                raise SettingsError(e.path, f"{e.message} (domain {domain}, its settings with the global ones)") from None
        out[layer_id] = dict(values)
    return out
