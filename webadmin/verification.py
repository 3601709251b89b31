"""User verification sources (tried in order per domain) and dynamic authentication.

- local: the address is an account's mailbox or alias;
- ldap: an LDAP / Active Directory search (ldap3), and a bind as the user to check a password;
- smtp: an SMTP callout to the domain's mail server (RFC 5321 RCPT TO without DATA), and SMTP
  AUTH (RFC 4954) to check a password.

Answers are cached in VerifiedAddress for the source's ``cache_hours``.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from webadmin.models import Account, Domain, VerificationSource, VerifiedAddress

log = logging.getLogger("bulwark.verification")
TIMEOUT_S = 10


@dataclass(frozen=True)
class Verdict:
    exists: bool | None  # None: no source could tell
    source: str


def _domain_of(address: str) -> Domain | None:
    dom = address.rpartition("@")[2].lower()
    return Domain.objects.filter(name=dom).first() if dom else None


def verify_address(address: str, *, use_cache: bool = True) -> Verdict:
    address = address.strip().lower()
    domain = _domain_of(address)
    if domain is None:
        return Verdict(False, "not-local")
    sources = list(domain.verification_sources.filter(enabled=True).order_by("order", "id"))
    if use_cache:
        hit = VerifiedAddress.objects.filter(address=address).first()
        if hit is not None:
            hours = min((s.cache_hours for s in sources), default=24)
            if timezone.now() - hit.checked < dt.timedelta(hours=hours):
                return Verdict(hit.exists, hit.source)
    for s in sources:
        try:
            answer = _check(s, domain, address)
        except Exception as e:  # noqa: BLE001 - a broken source must not stop the next one
            log.warning("verification source %s for %s failed: %s", s.kind, domain.name, e)
            continue
        if answer is not None:
            VerifiedAddress.objects.update_or_create(
                address=address, defaults={"exists": answer, "source": s.kind, "checked": timezone.now()})
            return Verdict(answer, s.kind)
    return Verdict(None, "")


def _check(s: VerificationSource, domain: Domain, address: str) -> bool | None:
    if s.kind == "local":
        for a in Account.objects.filter(mailbox__iendswith="@" + domain.name).only("mailbox", "aliases"):
            if address in a.addresses:
                return True
        return False
    if s.kind == "ldap":
        return _ldap_lookup(s.config, address)
    if s.kind == "smtp":
        return _smtp_callout(s.config, domain, address)
    return None


def ldap_connection(cfg: dict[str, str], user: str | None, password: str | None) -> Any:
    """An unbound ldap3 connection to the source's server (tests replace this function)."""
    import ldap3

    server = ldap3.Server(cfg["url"], connect_timeout=TIMEOUT_S, get_info=ldap3.NONE)
    return ldap3.Connection(server, user=user, password=password, receive_timeout=TIMEOUT_S)


def _ldap_lookup(cfg: dict[str, str], address: str) -> bool:
    from ldap3.utils.conv import escape_filter_chars

    conn = ldap_connection(cfg, cfg.get("bind_dn") or None, cfg.get("bind_password") or None)
    if not conn.bind():
        raise ConnectionError(f"LDAP bind as {cfg.get('bind_dn') or 'anonymous'} failed")
    try:
        flt = cfg.get("filter", "(|(mail={address})(proxyAddresses=smtp:{address}))")
        conn.search(cfg["base_dn"], flt.replace("{address}", escape_filter_chars(address)), attributes=[],
                    size_limit=1)
        return bool(conn.entries)
    finally:
        conn.unbind()


def _smtp_target(cfg: dict[str, str], domain: Domain) -> tuple[str, int]:
    host = cfg.get("host") or (domain.mail_servers[0] if domain.mail_servers else "")
    if not host:
        raise ValueError("no mail server configured")
    port = int(cfg.get("port") or 25)
    if ":" in host and not host.startswith("["):
        host, _, p = host.rpartition(":")
        port = int(p)
    return host.strip("[]"), port


def _smtp_callout(cfg: dict[str, str], domain: Domain, address: str) -> bool | None:
    host, port = _smtp_target(cfg, domain)
    with smtplib.SMTP(host, port, timeout=TIMEOUT_S, local_hostname=settings.GATEWAY.hostname) as smtp:
        smtp.ehlo_or_helo_if_needed()
        code, _ = smtp.mail("")
        if code >= 400:
            return None
        code, _ = smtp.rcpt(address)
        smtp.rset()
    if 200 <= code < 300:
        return True
    if 500 <= code < 600:
        return False
    return None  # 4xx: the server could not tell now


def authenticate_mailbox(address: str, password: str) -> bool:
    """Dynamic authentication: check a mailbox password through the first source that allows
    login (LDAP bind or SMTP AUTH)."""
    address = address.strip().lower()
    domain = _domain_of(address)
    if domain is None or not password:
        return False
    for s in domain.verification_sources.filter(enabled=True, allow_login=True).order_by("order", "id"):
        try:
            if s.kind == "ldap":
                from ldap3.utils.dn import escape_rdn

                # login_dn: "{address}" (Active Directory UPN bind) or a DN template with
                # {address} / {local} (the part before @), escaped as an RDN value.
                who = (s.config.get("login_dn", "{address}").replace("{address}", escape_rdn(address))
                       .replace("{local}", escape_rdn(address.partition("@")[0])))
                conn = ldap_connection(s.config, who, password)
                ok = bool(conn.bind())
                conn.unbind()
                return ok
            if s.kind == "smtp":
                host, port = _smtp_target(s.config, domain)
                with smtplib.SMTP(host, port, timeout=TIMEOUT_S, local_hostname=settings.GATEWAY.hostname) as smtp:
                    smtp.ehlo()
                    if smtp.has_extn("starttls"):
                        smtp.starttls()
                        smtp.ehlo()
                    smtp.login(address, password)
                    return True
        except smtplib.SMTPAuthenticationError:
            return False
        except Exception as e:  # noqa: BLE001
            log.warning("login through %s for %s failed: %s", s.kind, domain.name, e)
            continue
    return False
