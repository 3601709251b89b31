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


EVALS: frozenset[str] = frozenset(f"check_for_{d}{kind}_{w}_from" for d in ("", "def_") for kind in ("dkim", "spf")
                  for w in ("welcomelist", "whitelist"))
for _fn in (check_for_dkim_welcomelist_from, check_for_def_dkim_welcomelist_from, check_for_spf_welcomelist_from,
            check_for_def_spf_welcomelist_from):
    _eval(_fn.__name__)(_fn)
    _eval(_fn.__name__.replace("welcomelist", "whitelist"))(_fn)
