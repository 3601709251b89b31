"""The welcome-lists of SpamAssassin's DKIM and SPF plugins: ``USER_IN_DEF_DKIM_WL``,
``USER_IN_DKIM_WELCOMELIST``, ``USER_IN_DEF_SPF_WL`` and ``USER_IN_SPF_WELCOMELIST``, which
Debian's rule files fill with ``def_welcomelist_from_dkim``, ``def_welcomelist_from_spf`` and
``def_welcomelist_auth`` (banks, shops, payment services: about a thousand entries). They are
network tests in SpamAssassin (``tflags net``); here they read what the dkim and spf layers
found, which the rules layer passes in the extras (never a lookup of their own):

- ``dkim_signatures``: each signature the dkim layer checked as (signing identity's domain, a
  valid one), where that layer ran; absent where it did not (no match then, as SpamAssassin
  without DNS);
- ``spf_pass_sender``: the envelope sender, lower-cased, where the spf layer gave it pass.

As DKIM.pm's ``_check_dkim_welcomelist`` and SPF.pm's ``_check_spf_welcomelist`` judge them: an
author (each address of the From fields) that an entry's glob matches asks for a valid
signature by the entry's domain (``*.`` or ``.``: a subdomain of it) or, without one and for
``welcomelist_auth`` entries, by the author's own domain; an SPF entry asks for an SPF pass of
an envelope sender the glob matches.

Also the DKIM plugin's other rules that read more than one yes or no from the dkim layer: the
signing practices rules (``DKIM_ADSP_*`` and the ``NML_ADSP_*`` metas over them) from the rule
files' ``adsp_override`` entries, and ``check_dkim_valid`` with signing domains
(``__RESIGNER1``, ``__RESIGNER2``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from gateway_milter.antispam.saeval import _eval
from gateway_milter.antispam.wlbleval import _lists

if TYPE_CHECKING:
    from gateway_milter.antispam.saview import SaMessage

_AUTHOR_DOMAIN = re.compile(r"@([^@]+?)[ \t]*\Z")
_DEF, _OWN = ("def_welcomelist_from_dkim", "def_welcomelist_auth"), ("welcomelist_from_dkim", "welcomelist_auth")


def _authors(m: SaMessage) -> list[str]:
    """``get('from:addr')`` in list context: every address of every From field."""
    return [a for _, a in m.addresses(m._values(m.raw_headers, "from")) if a]


def _dkim_listed(m: SaMessage, extra: dict[str, Any], names: tuple[str, str]) -> int:
    sigs = extra.get("dkim_signatures")
    if not sigs or not any(valid for _, valid in sigs):  # (check_dkim_valid first)
        return 0
    key = "dkim_wl_" + names[0]
    got: int | None = m.cache.get(key)
    if got is not None:
        return got
    lists = _lists(extra)
    wanted: list[tuple[str, str | None]] = []  # (author's domain, the signing domain an entry asks for)
    for author in _authors(m):
        low = author.lower()
        dm = _AUTHOR_DOMAIN.search(low)
        domain = dm.group(1) if dm else ""
        for rx, sdids in lists.rcvd.get(names[0], ()):
            if rx.search(low):
                wanted.extend((domain, s) for s in sdids)
        auth = lists.addr.get(names[1])
        if auth is not None and auth.match(low):
            wanted.append((domain, None))
    found = 0
    for sdid, valid in sigs:
        if valid and any(_signed_as_asked(sdid, domain, asked) for domain, asked in wanted):
            found = 1
            break
    m.cache[key] = found
    return found


def _signed_as_asked(sdid: str, author_domain: str, asked: str | None) -> bool:
    """_wlcheck_list's match of one signature to one list entry."""
    if not asked:
        return sdid == author_domain
    asked = asked.rpartition("@")[2]
    if asked.startswith(("*.", ".")):  # (s/^\*?\.//: its subdomains)
        return sdid.endswith(asked.removeprefix("*"))
    return sdid == asked


def _spf_listed(extra: dict[str, Any], names: tuple[str, str]) -> int:
    sender = extra.get("spf_pass_sender")
    if not sender:
        return 0
    lists = _lists(extra)
    return int(any((lst := lists.addr.get(n)) is not None and lst.match(sender) for n in names))


def check_for_dkim_welcomelist_from(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return _dkim_listed(m, extra, _OWN)


def check_for_def_dkim_welcomelist_from(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return _dkim_listed(m, extra, _DEF)


def check_for_spf_welcomelist_from(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return _spf_listed(extra, ("welcomelist_from_spf", "welcomelist_auth"))


def check_for_def_spf_welcomelist_from(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return _spf_listed(extra, ("def_welcomelist_from_spf", "def_welcomelist_auth"))


# -- the DKIM plugin's signing practices (ADSP, RFC 5617) and signed-by checks -------------------
_FQDN = re.compile(r".\.[a-z-]{2,}\Z", re.I | re.S)
_SUBDOMAINS = re.compile(r"\*?\.(.*)\Z", re.S)
_PRACTICE_LETTERS = {"*": "NAD123"}  # (check_dkim_adsp('*'): any practice but unknown)


def _author_domains(m: SaMessage) -> list[str]:
    """_get_authors: the lower-cased domain of each author address, once each."""
    out: dict[str, None] = {}
    for author in _authors(m):
        dm = _AUTHOR_DOMAIN.search(author)
        if dm:
            out[dm.group(1).lower()] = None
    return list(out)


def _adsp(m: SaMessage, extra: dict[str, Any]) -> dict[str, str]:
    """_check_dkim_adsp: each fully qualified author domain's signing practices as a letter
    (``D`` discardable, ``A`` all, ``N`` nxdomain, ``U`` unknown, ``1``-``3`` custom), for the
    author domains without a valid signature of their own. The practices come from the rule
    files' ``adsp_override`` entries (the domain, then ``*.`` and its parent domains, then
    ``*``). A domain no entry names has none: SpamAssassin would look up its ``_adsp._domainkey``
    record, a DNS record of a standard moved to Historic (RFC 5617's status change, 2013) that
    the gateway does not fetch. Not for a domain whose own signature's key lookup failed
    (temperror); the plugin's other exception, a message cut short before it was checked, cannot
    happen here (the dkim layer verifies the whole message)."""
    got: dict[str, str] | None = m.cache.get("dkim_adsp")
    if got is not None:
        return got
    overrides = _lists(extra).adsp_override
    own = {sdid for sdid, valid in extra.get("dkim_signatures") or () if valid}
    own.update(extra.get("dkim_tempfailed") or ())
    got = {}
    for domain in _author_domains(m):
        if not _FQDN.search(domain) or domain in own:
            continue
        labels = domain.split(".")
        for key in (domain, *("*." + ".".join(labels[i:]) for i in range(1, len(labels))), "*"):
            practice = overrides.get(key)
            if practice is not None:
                got[domain] = practice
                break
    m.cache["dkim_adsp"] = got
    return got


def _names_domain(asked: str, domain: str) -> bool:
    """One domain argument of check_dkim_adsp / check_dkim_valid: ``.example.com`` or
    ``*.example.com`` the domain or a subdomain of it, else the domain itself."""
    sub = _SUBDOMAINS.match(asked)
    if sub:
        d = sub.group(1).lower()
        return domain == d or domain.endswith("." + d)
    return domain == asked.lower()


def check_dkim_adsp(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    """``DKIM_ADSP_DISCARD`` and the like: an author domain without a valid signature of its own
    whose signing practices are one of the letters asked for; with domain arguments, only for
    those author domains (any author's, as DKIM.pm compares them)."""
    if not extra.get("dkim_checked") or not args:
        return 0
    letters = str(args[0])
    letters = _PRACTICE_LETTERS.get(letters, letters)
    if not any(p in letters for p in _adsp(m, extra).values()):
        return 0
    if len(args) == 1:
        return 1
    authors = _author_domains(m)
    return int(any(_names_domain(str(a), d) for a in args[1:] for d in authors))


def check_dkim_signall(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return check_dkim_adsp(m, ("A",), extra)


def check_dkim_signsome(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    return 0  # (always true under ADSP, so the plugin answers 0 to keep the old rule quiet)


def check_dkim_valid(m: SaMessage, args: tuple[Any, ...], extra: dict[str, Any]) -> int:
    """A valid signature; with domain arguments (``__RESIGNER1``: linkedin.com), one whose
    signing domain is one of them (_check_dkim_signed_by)."""
    valid = [sdid for sdid, ok in extra.get("dkim_signatures") or () if ok]
    if not valid or not args:
        return int(bool(valid))
    return int(any(_names_domain(str(a), sdid) for sdid in valid for a in args))


_DKIM_EVALS = (check_dkim_adsp, check_dkim_signall, check_dkim_signsome, check_dkim_valid)
for _fn in _DKIM_EVALS:
    _eval(_fn.__name__)(_fn)
EVALS: frozenset[str] = frozenset(
    [f"check_for_{d}{kind}_{w}_from" for d in ("", "def_") for kind in ("dkim", "spf") for w in ("welcomelist", "whitelist")]
    + [fn.__name__ for fn in _DKIM_EVALS])
for _fn in (check_for_dkim_welcomelist_from, check_for_def_dkim_welcomelist_from, check_for_spf_welcomelist_from,
            check_for_def_spf_welcomelist_from):
    _eval(_fn.__name__)(_fn)
    _eval(_fn.__name__.replace("welcomelist", "whitelist"))(_fn)
