"""SpamAssassin's own header address parser (Mail::SpamAssassin::Util::parse_header_addresses
and _parse_header_addresses, 4.0.1; Debian's spamassassin has no Email::Address::XS, so this is
the only one it uses): what ``From:addr`` and ``From:name`` read, and the address lists of the
eval functions. It reads malformed values its own way: a source route (``<@a,@b:u@c>``) is no
address, ``a@[1], [b]@example.com`` none either, ``<a@b.example>junk, <c@d.example>junk`` two;
the standard library's parser, used before, found other addresses in 33 of the 7,212 distinct
address-field values of the SpamAssassin corpus (From, To, Cc, Reply-To, Sender, Resent-From,
Return-Path, Bcc); this one reads all of them as SpamAssassin does
(tests/integration/antispam/test_sa_differential.py)."""

from __future__ import annotations

import re

from gateway_milter.antispam.sauris import idn_to_ascii, is_fqdn_valid

# (Perl's possessive repeats of a group as atomic groups: Python before 3.11.5 matches a
# possessive repeat of a group that can backtrack wrongly, CPython gh-106052)
_QUOTED = r'"(?>(?:[^"\\]++|\\.)*)"'
_MAIL = (r"(?:" + _QUOTED + r"|[^@\s<>()\[\],:;]+)"
         r"@(?:[^\"\s<>()\[\],:;]+|\[[\d:.]+\])")
_ADDRESS = re.compile(
    r"\A\s*(?:"
    r"(?:((?:" + _QUOTED + r'|[^",;<]++)+)\s*)?'  # 1: a phrase
    r"<\s*([^>@]*\S+|\s*)\s*>"  # 2: <address>
    r"(?:\s*<\s*(?:(?:" + _QUOTED + r")?\S+|\s*)\s*>)*"
    r"|"
    r"(?:(" + _MAIL + r")|((?:" + _QUOTED + r'|[^",;<]++)+))'  # 3: an address; 4: a phrase
    r")"
    r"(?:\s*\(((?>(?:[^()\\]++|\\.)*))\))?"  # 5: a comment
    r"\s*(?:[,;]|\Z)", re.I | re.S | re.ASCII)
_MAIL_ONLY = re.compile(r"\A" + _MAIL + r"\Z", re.I | re.ASCII)
_GROUP = re.compile(r'\A[^"()<>]+:\s*(.*?)\s*(?:;.*)?', re.S | re.ASCII)
_COMMENT = re.compile(r"\((?>(?:[^()\\]++|\\.)*)\)", re.S)
_PHRASE_PART = re.compile(r'"((?>(?:[^"\\]++|\\.)*))"|([^"]++)', re.I | re.S)
_TRAILING_WS = re.compile(r"\s+\Z", re.ASCII)
_ENCLOSED = re.compile(r"<(" + _MAIL + r")>", re.I | re.S | re.ASCII)


def _valid(address: str | None) -> bool:
    return address is not None and not address.startswith('""@') and address.count('"') != 1


def _to_second_at(address: str) -> str:
    """``user@host`` of an address: what follows a second "@" goes."""
    return "@".join(address.split("@", 2)[:2])


def parse_addresses(value: str) -> list[tuple[str | None, str | None]]:
    """(phrase, address) of each address of a raw header value, None where SpamAssassin's
    parser leaves it undefined."""
    s = _TRAILING_WS.sub("", value).replace("\\\\", "")
    s = _GROUP.sub(lambda m: m.group(1), s, count=1)
    if not s.strip():
        return []
    out: list[tuple[str | None, str | None]] = []
    while (m := _ADDRESS.match(s)) is not None:  # (every match takes a character at least)
        s = s[m.end():]
        phrase = m.group(1) if m.group(1) is not None else m.group(4)
        address = m.group(2) if m.group(2) is not None else m.group(3)
        comment = m.group(5)
        if m.group(2) is not None:
            address = _COMMENT.sub("", address)
            if not _MAIL_ONLY.match(address):
                address = None
        if not _valid(address):
            address = None
        if phrase is not None:
            parts = []
            for pm in _PHRASE_PART.finditer(phrase):
                qs, nqs = pm.group(1), pm.group(2)
                if qs is not None:
                    parts.append(re.sub(r"\\(?!\\)", "", qs).replace("\\\\", "\\"))
                else:
                    parts.append(_COMMENT.sub("", nqs))
            phrase = "".join(parts) if parts else None
            if (address is None and phrase is not None and _MAIL_ONLY.match(phrase) and _valid(phrase)
                    and is_fqdn_valid(idn_to_ascii(phrase.split("@", 2)[1]))):
                address, phrase = phrase, None
            elif phrase is not None and (phrase == address or phrase == ""):
                phrase = None
        if phrase is None and comment is not None:
            phrase = comment
        out.append((phrase, None if address is None else _to_second_at(address)))
    if "@" in s:
        # the parser's last resort on what it left: every <address> in it, without a name
        # ('=?UTF-8?Q?"Foobar"_<noreply@foobar.com>?=', '<a@b.example>trailing text, ...')
        for m in _ENCLOSED.finditer(s):
            if _valid(m.group(1)):
                out.append((None, _to_second_at(m.group(1))))
    return out
