"""SpamAssassin's URI list, what its ``uri`` rules run over (Mail::SpamAssassin::PerMsgStatus's
``get_uri_list``, 4.0).

Two sources, as there:
- **the rendered text** (the Subject, then the body paragraphs): Thunderbird-style links
  (``http://``, ``ftp://``, ``www.``, ``ftp.``), email addresses and ``mailto:`` (made
  ``mailto:`` URIs), and host names without a scheme ending in a known top-level domain (made
  ``http://`` URIs). The known domains are the rule files' ``util_rb_tld`` lines.
- **the HTML links** as found (``a``/``area``/``link`` href, ``img``/``frame``/``script`` src,
  ``form`` action, ``body``/``table`` background, ``base``), relative ones resolved against
  ``<base href>`` (:mod:`.htmltext` collects them).

Each one is then canonicalised as ``Util::uri_list_canonicalize`` does: the URI as found stays
in the list, and variants are added beside it (percent-decoded, ``http://`` added to an
unschemed link, user name, default port and trailing punctuation of the host dropped,
numeric and hex IP forms as dotted quads, the target of a known redirector, the address of a
``mailto:`` without its ``?subject=``).

The web-link list of :mod:`.urls` stays what Bayes reads; the URIBL layer reads the HTML links
collected here with their kinds (``HtmlUris.kinds``, for URIDNSBL's ranking) and this module's
text parser (gateway_milter/layers/uribl.py ``message_links``); this list is for the rules
alone, so that a rule such as ``__UNSUB_LINK`` (an ``unsubscribe`` word in any URI) sees the
unsubscribe address that SpamAssassin's list holds.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import Any

MAX_URI_LENGTH = 8192  # PerMsgStatus/HTML: longer URIs are cut
MAX_URIS = 2000  # our bound on the list (hostile input)
CANON_CACHE = 8192  # URIs whose canonical forms are kept (per rule set)

# --- Thunderbird/Outlook URI recognition in text (PerMsgStatus::_tbirdurire) -------------------
_START = "><\"'`,{[(|\\s\\x1b\\xa0"
_END = "><\"`}\\]{[|\\s\\x1b\\xa0"
_NON_ASCII = "\\x80-\\U0010ffff"  # SpamAssassin reads octets: every non-ASCII character's are \x80-\xff
_END_EMAIL = _END + ",('" + _NON_ASCII
_END_EMAIL_AT = _END_EMAIL + "@"
_SC_START = r"[!\"#$&'()*+,/:;<=>?@\[\\\]^`{|}~\s\x1b\xa0]"


def tld_pattern(tlds: Iterable[str]) -> str:
    """RegistryBoundaries' ``valid_tlds_re`` as a trie of the labels (the same language as its
    alternation, without Python trying a thousand alternatives at every position)."""
    trie: dict[str, Any] = {}
    for t in sorted(set(tlds)):
        node = trie
        for ch in t:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        end = "" in node
        branches = [re.escape(ch) + emit(sub) for ch, sub in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if end:
            return f"(?:{body})?"
        return body

    inner = emit(trie) if trie else "(?!)"
    return r"(?<![a-zA-Z0-9-])(?:" + inner + r")(?![a-zA-Z0-9-]|\.[a-zA-Z0-9])"


def text_uri_regex(tlds: Iterable[str], mail_only: bool = False) -> re.Pattern[str]:
    """The text URI pattern. Its repeats are possessive (``{1,2048}+``) where each is followed by
    something its own class excludes (a look-ahead for an end character, or ``@``): giving
    characters back could never let the match go on, so only the failing search is shorter.
    ``mail_only``: the same groups, with the link and host branches unable to match (for the
    stretches of a long word where only an address can end in time: :meth:`UriSettings._long_word`)."""
    tld = tld_pattern(tlds)
    schemeless = (r"([a-z\d][a-z\d._-]{0,251}\." + tld + r")\.?(?::\d{1,5})?(?:/[^" + _END + r"]{1,2048}+)?")
    known = r"(?:(?:https?|ftp)://|(?:www\d{0,2}|ftp)\.)[^" + _END + r"]{1,2048}+"
    if mail_only:
        schemeless, known = r"(?!)()", r"(?!)"
    mail = (r"(?:mailto:[^" + _END_EMAIL + r"]{1,2048}+|[^" + _END_EMAIL_AT + r"]{1,251}+@[^" + _END_EMAIL
            + r"]{1,251}+)")
    return re.compile(
        r"(?:\b|(?<=\x1b\(.)|(?<=[" + _START + r"]))"
        r"(?:(?:(" + known + r")(?=[" + _END + r"]|\Z))"
        r"|(?:(" + mail + r")(?=[" + _END_EMAIL + r"]|\Z))"
        r"|(?:(?:^|(?<=" + _SC_START + r"))(" + schemeless + r")(?=[" + _END + r"]|\Z)))",
        re.IGNORECASE | re.ASCII)


# A word this long is searched position by position (UriSettings._long_word): each link that
# finds no end character in its 2,048 would otherwise cost 2,048 steps, and a word of "www."
# has one every four characters (500 KB took 9 s).
LONG_WORD = 4096
_END_CHAR = re.compile("[" + _END + "]", re.ASCII)  # (as the pattern reads them: ASCII white space)
_END_EMAIL_CHAR = re.compile("[" + _END_EMAIL + "]", re.ASCII)
MAIL_SPAN = 8 + 2048 + 8  # "mailto:" and 2,048 characters (an address: 251 + 1 + 251), with room


# No URI the pattern finds holds ASCII white space, and each one kept holds one of these: "@"
# (an address: a "mailto:" without one is dropped), "://" (a scheme), "www" or "ftp." (a known
# prefix), or a dot before a letter or digit (a host name). So the pattern runs only over the
# space-delimited words that hold one, each searched in place (finditer with pos/endpos: the
# look-behinds still see the character before the word, and the space after it reads as the
# end the look-aheads accept): the same URIs as over the whole text, at a fifth of the cost.
_ANCHOR = re.compile(r"(?=[@:.wWfF])(?:@|://|[wW][wW][wW]|[fF][tT][pP]\.|\.[a-zA-Z0-9])")  # (the look-ahead: 2x faster)
_RARE_WS = re.compile(r"[\t\r\x0b\x0c]")
_ASCII_WS = str.maketrans("\t\r\x0b\x0c", "    ")
_CLOSE_PAREN = re.compile(r"^([^(]*)\).*$", re.DOTALL)
_TRAILING = re.compile(r"[-~!@#^&*()_+=:;'?,.]*$")
_CID = re.compile(r"[cm]id:", re.IGNORECASE)
_EMPTY_URI = re.compile(r"\w+:/{0,2}", re.ASCII)
_SCHEMED = re.compile(r"(?:https?|ftp|mailto):", re.IGNORECASE)
_FTP_HOST = re.compile(r"ftp\.", re.IGNORECASE)
_WWW_HOST = re.compile(r"www\d{0,2}\.", re.IGNORECASE)
_SLASH_BEFORE_AT = re.compile(r"/.+@")
_DOT_AFTER_AT = re.compile(r"@.+?\.")
_MISPARSE = re.compile(r"^(?:skype|e?-?mail)?:+", re.IGNORECASE)
_PCT_ANY = re.compile(r"%[0-9a-fA-F]{2}")
_MAIL_HOST = re.compile(r"@([^?&>]*)")
_TRAILING_PCT20 = re.compile(r"(?:%20)+$")
_SPACE = re.compile(r"\s")
_LAST_LABEL = re.compile(r"\.([^.]+)$")
_NO_HOST_SCHEME = re.compile(r"(?:javascript|cid|file):")
_SCHEME_PREFIX = re.compile(r"^[a-z]+:/{0,2}")
_PATH_ON = re.compile(r"[/?#].*", re.DOTALL)
_USERINFO = re.compile(r"^[^/]*@")
_PORT_END = re.compile(r":\d*$", re.ASCII)
_ENCODED_PRINTABLE = re.compile(r"%(?:2[1-9a-f]|[3-6][0-9a-f]|7[0-9a-e])")
_FQDN_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")


def idn_to_ascii(host: str) -> str:
    """Util::idn_to_ascii: lower case, Unicode dots to dots, IDN labels to A-labels."""
    h = host.lower()
    if h.isascii():
        return h
    h = h.replace("\u3002", ".").replace("\uff0e", ".").replace("\uff61", ".")
    try:
        return h.encode("idna").decode("ascii")
    except UnicodeError:
        return h


def is_fqdn_valid(host: str) -> bool:
    """Util::is_fqdn_valid (ASCII): two labels or more, 1-63 characters each, ``_`` only below
    the second level."""
    host = host.lower().rstrip(".")
    if len(host) > 253:
        return False
    labels = host.split(".")
    cnt = len(labels)
    if cnt < 2:
        return False
    for label in labels:
        if not 1 <= len(label) <= 63 or not _FQDN_LABEL.match(label):
            return False
        if cnt <= 2 and "_" in label:
            return False
        cnt -= 1
    return True


def is_ip(host: str) -> bool:
    """Constants' IS_IP_ADDRESS: a dotted quad (no leading zeros) or an IPv6 address."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


class UriSettings:
    """The rule files' URI settings: ``util_rb_tld`` and ``redirector_pattern``."""

    def __init__(self, tlds: Iterable[str], redirectors: Iterable[re.Pattern[str]] = ()) -> None:
        self.tlds = frozenset(tlds)
        self.redirectors = tuple(redirectors)
        self._text_re: re.Pattern[str] | None = None
        self._text_mail_re: re.Pattern[str] | None = None
        # canonical forms by URI: links recur from message to message (newsletters, footers)
        self._canon: dict[str, tuple[str, ...]] = {}
        self._hosts: dict[str, str | None] = {}

    @property
    def text_re(self) -> re.Pattern[str]:
        if self._text_re is None:
            self._text_re = text_uri_regex(self.tlds)
        return self._text_re

    @property
    def text_mail_re(self) -> re.Pattern[str]:
        if self._text_mail_re is None:
            self._text_mail_re = text_uri_regex(self.tlds, mail_only=True)
        return self._text_mail_re

    @property
    def host_span(self) -> int:
        """The longest link or host without a scheme the text pattern can match, with room:
        a host of 253 characters and the longest known top-level domain, a port, a path of
        2,048."""
        return 2048 + 253 + max((len(t) for t in self.tlds), default=0) + 32

    def is_domain_valid(self, dom: str) -> bool:
        """RegistryBoundaries::is_domain_valid: ends in a known TLD after at least one dot."""
        dom = idn_to_ascii(dom)
        if _SPACE.search(dom):
            return False
        m = _LAST_LABEL.search(dom)
        return m is not None and m.group(1) in self.tlds

    def uri_host(self, uri: str) -> str | None:
        """RegistryBoundaries::uri_to_domain's host (not trimmed to the registered domain):
        None when the URI has no valid host. Remembered per URI (links recur from message to
        message)."""
        try:
            return self._hosts[uri]
        except KeyError:
            pass
        if len(self._hosts) >= CANON_CACHE:
            self._hosts.clear()
        host = self._hosts[uri] = self._uri_host(uri)
        return host

    def _uri_host(self, uri: str) -> str | None:
        u = uri.lower()
        if _NO_HOST_SCHEME.match(u):
            return None
        if u.startswith("mailto:"):
            u = u[7:].split("?", 1)[0]  # parameters dropped
            if u.count("@") != 1:
                return None  # no user name, or several @
            u = u.split("@")[-1]
        else:
            u = _SCHEME_PREFIX.sub("", u, count=1)
            u = _PATH_ON.sub("", u, count=1)
            u = _USERINFO.sub("", u, count=1)
            u = _PORT_END.sub("", u, count=1)
        if _ENCODED_PRINTABLE.search(u):
            return None  # the decoded copy is in the list too
        host = idn_to_ascii(u)
        if is_ip(host):
            return host
        if not is_fqdn_valid(host) or not self.is_domain_valid(host):
            return None
        return host

    # -- the list -------------------------------------------------------------------------------
    def uri_list(self, texts: Iterable[str], html_uris: Iterable[str]) -> list[str]:
        """Every URI of the message with its canonical variants, in order of first appearance."""
        out: dict[str, None] = {}
        for uri in self.text_uris(texts):
            cleaned = self._canonical(uri)
            if any(self.uri_host(c) is not None for c in cleaned):  # valid_domain: text URIs only
                out.update(dict.fromkeys(cleaned))
            if len(out) >= MAX_URIS:
                return list(out)[:MAX_URIS]
        for uri in html_uris:
            out.update(dict.fromkeys(self._canonical(uri)))
            if len(out) >= MAX_URIS:
                break
        return list(out)[:MAX_URIS]

    def _canonical(self, uri: str) -> tuple[str, ...]:
        c = self._canon.get(uri)
        if c is None:
            if len(self._canon) >= CANON_CACHE:
                self._canon.clear()
            c = self._canon[uri] = tuple(self.canonicalize(uri))
        return c

    def text_uris(self, texts: Iterable[str]) -> list[str]:
        """PerMsgStatus::_process_text_uri_list: URIs in the rendered text, schemes added."""
        seen: set[str] = set()
        found: list[str] = []
        for m in self._matches(texts):
            raw = m.group(1) or m.group(2) or m.group(3)
            schost = m.group(4)
            mail = not m.group(1) and bool(m.group(2))
            raw = _CLOSE_PAREN.sub(r"\1", raw, count=1)  # ")" ends a URI holding no "("
            raw = _TRAILING.sub("", raw, count=1)  # trailing punctuation Thunderbird ignores
            if raw in seen:
                continue
            seen.add(raw)
            if mail and "@" not in raw:
                continue
            if schost is not None and not is_fqdn_valid(schost):
                continue
            if _CID.match(raw) or _EMPTY_URI.fullmatch(raw):
                continue
            uri = raw
            if not _SCHEMED.match(uri):
                if _FTP_HOST.match(uri):
                    uri = "ftp://" + uri
                elif _WWW_HOST.match(uri) or _SLASH_BEFORE_AT.search(uri):
                    uri = "http://" + uri  # (a "/" before the "@": not an email address)
                elif "@" in uri:
                    if not _DOT_AFTER_AT.search(uri) or "&nbsp;" in uri:
                        continue
                    uri = "mailto:" + _MISPARSE.sub("", uri, count=1)
                else:
                    if "." not in uri:
                        continue
                    uri = "http://" + uri
            if uri[:7].lower() == "mailto:":
                if _PCT_ANY.search(uri):
                    uri = url_decode(uri)
                at = _MAIL_HOST.search(uri)
                if at is None or not self.is_domain_valid(_TRAILING_PCT20.sub("", at.group(1))):
                    continue
            found.append(uri)
            if len(found) >= MAX_URIS:
                break
        return found

    def _matches(self, texts: Iterable[str]) -> Iterator[re.Match[str]]:
        rx = self.text_re
        for text in texts:
            # words end at " " and "\n" (the rendered body has no other white space)
            spaced = text.translate(_ASCII_WS) if _RARE_WS.search(text) else text
            end = 0
            for a in _ANCHOR.finditer(spaced):
                i = a.start()
                if i < end:
                    continue  # (a second anchor in a word already searched)
                start = max(spaced.rfind(" ", 0, i), spaced.rfind("\n", 0, i)) + 1
                e1, e2 = spaced.find(" ", i), spaced.find("\n", i)
                end = min(e1, e2) if e1 >= 0 and e2 >= 0 else max(e1, e2)
                if end < 0:
                    end = len(spaced)
                if end - start > LONG_WORD:
                    yield from self._long_word(text, start, end)
                else:
                    yield from rx.finditer(text, start, end)

    def _long_word(self, text: str, start: int, end: int) -> Iterator[re.Match[str]]:
        """``text_re.finditer(text, start, end)``, the same matches, without trying a link or a
        host where none can end. No match holds an end character (each class excludes them), and
        a link or host must be followed by one, or by the word's end: so it ends at the first
        one after its start, at most ``host_span`` characters on. An address ends likewise at
        the first address end character (a superset), at most MAIL_SPAN on. Each position is
        tried with the full pattern where a link can still end, with the address-only pattern
        where only an address can, and skipped where nothing can; after a match the search goes
        on at its end, as finditer's does."""
        rx, rx_mail, span = self.text_re, self.text_mail_re, self.host_span
        ends = [m.start() for m in _END_CHAR.finditer(text, start, end)]
        ends.append(end)
        mail_ends = [m.start() for m in _END_EMAIL_CHAR.finditer(text, start, end)]
        mail_ends.append(end)
        k = j = 0
        p = start
        while p < end:
            while ends[k] < p:
                k += 1
            while mail_ends[j] < p:
                j += 1
            if ends[k] - p <= span:
                m = rx.match(text, p, end)
            elif mail_ends[j] - p <= MAIL_SPAN:
                m = rx_mail.match(text, p, end)
            else:
                p = min(ends[k] - span, mail_ends[j] - MAIL_SPAN)  # (both > p)
                continue
            if m is None:
                p += 1
            else:
                yield m
                p = m.end()

    def canonicalize(self, uri: str) -> list[str]:
        """Util::uri_list_canonicalize: the URI as given and its variants (a redirector's target
        is walked as one more URI)."""
        queue = [uri]
        nuris: list[str] = []
        i = 0
        while i < len(queue) and i < 50:  # redirector targets are appended and walked too
            uri = queue[i].replace("\n", "").strip().replace("\r", "")
            queue[i] = uri  # (Perl edits the list's element in place)
            i += 1
            if len(uri) <= 1 or _RELATIVE.match(uri):
                continue
            if _MAILTO.match(uri) or _USER_AT.match(uri):
                nuris.extend(_mail_variants(uri))
                continue
            nuri = _HTTP_SLASHES.sub(r"\1//", uri.replace("\\", "/"), count=1)
            if _PCT_ANY.search(nuri):
                nuri = url_decode(nuri)
            nuri = with_scheme(nuri)
            nuri = _QUERY_NO_SLASH.sub(r"\1/\2", nuri, count=1)
            if "&#" in nuri:
                nuri = _DEC_ENTITY.sub(lambda m: chr(int(m.group(1))), nuri)
                nuri = _HEX_ENTITY.sub(lambda m: chr(int(m.group(1), 16)), nuri)
                nuri = _DOT_ENTITY.sub(".", nuri)
            if nuri != uri:
                nuris.append(nuri)
            m = _HTTP_PARTS.match(nuri)
            if m is not None:
                self._host_variants(m, queue, nuris)
        out = dict.fromkeys(queue)
        out.update(dict.fromkeys(nuris))
        return [u if len(u) <= MAX_URI_LENGTH else u[:MAX_URI_LENGTH] for u in out]

    def _host_variants(self, m: re.Match[str], queue: list[str], nuris: list[str]) -> None:
        """The rest of uri_list_canonicalize for an http(s) URI: default port, IDN host, control
        characters, redirector targets, user name, trailing punctuation, IP forms, bare names."""
        proto, auth, host, rest, port = m.group(1), m.group(2) or "", m.group(3), m.group(4), m.group(5)
        rest_noport = ""
        if port is None:
            port = "80" if proto == "http://" else "443"
        else:
            stripped = (_PORT_80 if proto == "http://" else _PORT_443).sub("", rest, count=1)
            rest_noport = stripped
            if stripped != rest:
                nuris.append(proto + host + stripped)
        nhost = idn_to_ascii(host)
        if nhost != host.lower():
            nuris.append(proto + nhost + rest)
            if rest_noport:
                nuris.append(proto + nhost + rest_noport)
            host = nhost
        h2 = _CONTROL.sub("", host)
        if h2 != host:
            host = h2
            nuris.append(proto + host + rest)
        target = proto + host + rest
        for rx in self.redirectors:
            r = rx.search(target)
            if r is not None and r.groups() and r.group(1) is not None:
                if "." not in r.group(1):
                    continue
                queue.append(r.group(1))
                break
        else:  # no redirector pattern: any http link inside the rest (bug 3308: one slash will do)
            r = _INNER_HTTP.search(rest)
            if r is not None and "." in r.group(1):
                queue.append(r.group(1))
        h2 = _USER_PART.sub("", host, count=1)
        if h2 != host:
            host = h2
            nuris.append(proto + host + rest)
        h2 = _HOST_TAIL.sub("", host, count=1)
        if h2 != host:
            host = h2
            nuris.append(proto + host + rest)
        ip = _DOTTED_NUMBERS.fullmatch(host)
        if ip:
            nuris.append(proto + "".join(_octet(c) for c in ip.groups()) + rest)
        elif _HEX_NUMBER.fullmatch(host):
            nuris.append(proto + _ulong_to_ip(int(host[2:][-8:], 16)) + rest)
        elif host.isascii() and host.isdigit():
            nuris.append(proto + _ulong_to_ip(int(host)) + rest)
        elif proto == "http://" and auth == "" and nhost != "localhost" and port == "80":
            w = _BARE_NAME.fullmatch(nhost)
            if w and not self.is_domain_valid(nhost):  # http://foobar -> http://www.foobar.com, as Firefox
                nuris.append(proto + "www." + w.group(1) + ".com" + rest)


def with_scheme(uri: str) -> str:
    """uri_list_canonicalize's default scheme: a URI without one is read as http:// (ftp://
    for ``ftp.<host>``), as most mail programs read it."""
    if _ANY_SCHEME.match(uri):
        return uri
    return ("ftp://" if uri.startswith("ftp.") else "http://") + uri


def _mail_variants(uri: str) -> list[str]:
    """uri_list_canonicalize for an email address: without ?subject= (and &...), without
    %20, the address inside <...>."""
    out: list[str] = []
    m = _MAIL_BEFORE_QUERY.match(uri)
    if m:
        out.append(m.group(1))
    m = _MAIL_BEFORE_AMP.match(uri)
    if m:
        out.append(m.group(1))
    if "%20" in uri:
        m = _MAIL_PCT20.match(uri)
        if m:
            out.append("mailto:" + m.group(1))
    m = _MAIL_BRACKETS.match(uri)
    if m:
        out.append("mailto:" + m.group(1))
    return out


_RELATIVE = re.compile(r"(?:[#?&]|/(?!/))")
_MAILTO = re.compile(r"mailto:", re.IGNORECASE)
_USER_AT = re.compile(r"[^:]*@")
_MAIL_BEFORE_QUERY = re.compile(r"([^@]+@[^?]+)\?")
_MAIL_BEFORE_AMP = re.compile(r"([^@]+@[^?&]+)&")
_MAIL_PCT20 = re.compile(r"(?:mailto:)?(?:%20)*([^@]+@[^?&%]+)", re.IGNORECASE)
_MAIL_BRACKETS = re.compile(r"[^?&]*<([^@>]+@[^>]+)>")
_HTTP_SLASHES = re.compile(r"^(https?:)/{0,2}", re.IGNORECASE)
_ANY_SCHEME = re.compile(r"[-_a-z0-9]+:", re.IGNORECASE)
_QUERY_NO_SLASH = re.compile(r"^(https?://[^/?#]+)([?#])", re.IGNORECASE)
_DEC_ENTITY = re.compile(r"&#0*(3[3-9]|[4-9]\d|1[01]\d|12[0-6]);", re.ASCII)
_HEX_ENTITY = re.compile(r"&#x0*(2[1-9]|[3-6][a-fA-F0-9]|7[0-9a-eA-E]);")
_DOT_ENTITY = re.compile(r"&#(?:x2e|12290|x3002|65294|xff0e|65377|xff61);", re.IGNORECASE)
_HTTP_PARTS = re.compile(r"(https?://)([^@/?#]*@)?([^/?#:]+)((?::(\d*))?.*)$", re.IGNORECASE | re.DOTALL | re.ASCII)
_PORT_80 = re.compile(r"^:80\b", re.ASCII)
_PORT_443 = re.compile(r"^:443\b", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x20]")
_INNER_HTTP = re.compile(r"(https?:/{0,2}[^&#]+)", re.IGNORECASE)
_USER_PART = re.compile(r"^[^@]+@")
_HOST_TAIL = re.compile(r"[^0-9A-Za-z]+$")
_DOTTED_NUMBERS = re.compile(r"((?:0x[0-9a-f]+|\d+)\.)((?:0x[0-9a-f]+|\d+)\.)((?:0x[0-9a-f]+|\d+)\.)(0x[0-9a-f]+|\d+)",
                             re.IGNORECASE | re.ASCII)
_HEX_NUMBER = re.compile(r"0x[0-9a-f]+", re.IGNORECASE)
_BARE_NAME = re.compile(r"(?:www\.)?([^.]+)")


def _octet(s: str) -> str:
    """One octet of a dotted IP as uri_list_canonicalize rewrites it (hex, octal, leading 0s)."""
    dot = s.endswith(".")
    v = s[:-1] if dot else s
    if v[:2].lower() == "0x":
        v = str(int(v[2:], 16))
    else:
        m = re.match(r"0+([1-3][0-7]{0,2}|[4-7][0-7]?)\b", v)
        if m:
            v = str(int(m.group(1), 8)) + v[m.end():]
    v = v.lstrip("0")
    return v + ("." if dot else "")


def _ulong_to_ip(n: int) -> str:
    """Util::decode_ulong_to_ip: the low 32 bits as a dotted quad."""
    n &= 0xFFFFFFFF
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))


_PCT = re.compile(r"(%[0-9a-fA-F]{2})")
_KEEP_ENCODED = re.compile(r"(20|7f|[0189a-fA-F][0-9a-fA-F])", re.IGNORECASE)
_TO_ENCODE = re.compile(r"[\x00-\x20\x7f-\U0010ffff\"%<>]")


def url_decode(url: str) -> str:
    """Util::url_encode (which decodes): a %XX of a printable character is decoded, but not
    %20, %7F, control or 8-bit bytes; raw spaces, controls, 8-bit characters and ``"%<>``
    are percent-encoded."""
    out: list[str] = []
    for piece in _PCT.split(url):
        if _PCT.fullmatch(piece):
            if _KEEP_ENCODED.search(piece) is None:
                piece = re.sub(r"%([2-7][0-9a-fA-F])", lambda m: chr(int(m.group(1), 16)), piece)
            out.append(piece)
        else:
            out.append(_TO_ENCODE.sub(lambda m: "".join(f"%{b:02x}" for b in m.group(0).encode("utf-8")), piece))
    return "".join(out)


# --- HTML links (Mail::SpamAssassin::HTML::html_uri and target_uri) -----------------------------
_URI_PARTS = re.compile(r"^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?", re.DOTALL)


def _remove_dot_segments(path: str) -> str:
    if "/." not in path and not path.startswith("."):
        return "" if path == "0" else path  # no "." or ".." segment (Perl reads "0" as false)
    out = ""
    path = re.sub(r"^(?:\.\.?/)", "/", path, count=1)
    guard = 0
    while path and path != "0" and guard < 10_000:
        guard += 1
        if re.match(r"/\.(?:$|/)", path):
            path = re.sub(r"^/\.(?:$|/)", "/", path, count=1)
        elif re.match(r"/\.\.(?:$|/)", path):
            path = re.sub(r"^/\.\.(?:$|/)", "/", path, count=1)
            out = re.sub(r"/?[^/]*$", "", out, count=1)
        else:
            m = re.match(r"/?[^/]*", path)
            assert m is not None
            if not m.group(0):
                break
            out += m.group(0)
            path = path[m.end():]
    return out


def target_uri(base: str, ref: str) -> str:
    """HTML::target_uri: ``ref`` resolved against ``base`` (RFC 3986 5.2, with SpamAssassin's
    non-strict scheme rule and ``http:`` for a schemeless ``//www.`` authority)."""
    r = _URI_PARTS.match(ref)
    b = _URI_PARTS.match(base)
    assert r is not None and b is not None
    r_scheme, r_auth, r_path, r_query, r_frag = r.groups()
    b_scheme, b_auth, b_path, b_query, _ = b.groups()
    if r_scheme is not None and b_scheme is not None and r_scheme == b_scheme:
        r_scheme = None
    if r_scheme is not None:
        scheme, auth, path, query = r_scheme, r_auth, _remove_dot_segments(r_path), r_query
    else:
        if r_auth is not None:
            auth, path, query = r_auth, _remove_dot_segments(r_path), r_query
        else:
            if r_path == "":
                path = b_path
                query = r_query if r_query is not None else b_query
            else:
                if r_path.startswith("/"):
                    path = _remove_dot_segments(r_path)
                else:
                    if b_auth is not None and not b_path:
                        merged = "/" + r_path
                    else:
                        merged = re.sub(r"(?<=/)[^/]*$", "", b_path, count=1) if "/" in b_path else ""
                        merged += r_path
                    path = _remove_dot_segments(merged)
                query = r_query
            auth = b_auth
        scheme = b_scheme
    res = ""
    if scheme:
        res += scheme + ":"
    elif auth is not None:
        if re.match(r"www\d*\.", auth, re.IGNORECASE):
            res += "http:"
        elif re.match(r"ftp\d*\.", auth, re.IGNORECASE):
            res += "ftp:"
    if auth is not None:
        res += "//" + auth
    res += path
    if query is not None:
        res += "?" + query
    if r_frag is not None:
        res += "#" + r_frag
    return res


_NO_TARGET = re.compile(r"(?:data|mailto|file|cid|tel):", re.IGNORECASE)
# HTML::html_uri's <meta http-equiv="refresh" content="...; url=URI"> (Perl's \s and \b: ASCII)
_URL_IS = re.compile(r"\burl\s*=", re.IGNORECASE | re.ASCII)
_UP_TO_URL = re.compile(r"^.*\burl\s*=\s*", re.IGNORECASE | re.ASCII)
_BEFORE_SEMI = re.compile(r"\s*;.*", re.ASCII)


class HtmlUris:
    """Collects an HTML part's URIs as HTML::html_uri does (its tags and attributes, ``<base>``)."""

    def __init__(self) -> None:
        self.uris: list[str] = []
        # what each URI of ``uris`` is, by the tag it came from, as URIDNSBL ranks them: "a"
        # (an anchor's href; :mod:`.htmltext` tells the anchors with text), "form", "img", or
        # "other" (area, link, script, frame, iframe, embed, bgsound, base, backgrounds, a
        # meta refresh's URL)
        self.kinds: list[str] = []
        self.base = ""
        self.seen: set[str] | None = None  # (made once the list reaches MAX_URIS)

    def push(self, uri: str, kind: str = "other") -> None:
        uri = uri.strip(" \t\r\n\x0b\x0c\xa0")[:MAX_URI_LENGTH]
        if not uri or len(self.uris) >= 2 * MAX_URIS:
            return
        target = uri if _NO_TARGET.match(uri) else target_uri(self.base, uri)
        if not target:
            return
        # our bound (hostile input): MAX_URIS links, then only links not seen yet, up to MAX_URIS
        # different ones: 2,000 copies of one pixel no longer push the part's real link out
        if len(self.uris) >= MAX_URIS:
            if self.seen is None:
                self.seen = set(self.uris)
            if target in self.seen or len(self.seen) >= MAX_URIS:
                return
            self.seen.add(target)
        self.uris.append(target)
        self.kinds.append(kind)

    def start(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in URI_TAGS:
            return
        a: dict[str, str] = {}
        for k, v in attrs:
            if v is not None and k not in a:
                a[k] = v
        if tag in ("body", "table", "tr", "td"):
            if "background" in a:
                self.push(a["background"])
        elif tag in ("a", "area", "link"):
            kind = "a" if tag == "a" else "other"
            if "href" in a:
                self.push(a["href"].replace("\ufeff", ""), kind)
            if "data-saferedirecturl" in a:
                self.push(a["data-saferedirecturl"], kind)
        elif tag in ("img", "frame", "iframe", "embed", "script", "bgsound"):
            if "src" in a:
                self.push(a["src"], "img" if tag == "img" else "other")
        elif tag == "form":
            if "action" in a:
                self.push(a["action"], "form")
        elif tag == "meta":
            # a refresh sends the reader's browser to its URL: content="0; url=http://..."
            content = a.get("content")
            if content is not None and "refresh" in a.get("http-equiv", "").lower() and _URL_IS.search(content):
                self.push(_BEFORE_SEMI.sub("", _UP_TO_URL.sub("", content, count=1), count=1))
        elif tag == "base":
            uri = a.get("href", "").strip(" \t\r\n\x0b\x0c\xa0")[:MAX_URI_LENGTH]
            if uri:
                self.push(uri)
                if re.match(r"(?:https?|ftp):/{0,2}", uri, re.IGNORECASE):
                    uri = re.sub(r"^([a-z]+:/{0,2}[^/]+/.*?)[^/.]+\.[^/.]{2,4}$", r"\1", uri, count=1,
                                 flags=re.IGNORECASE)
                    self.base = uri if uri.endswith("/") else uri + "/"


URI_TAGS = frozenset({"body", "table", "tr", "td", "a", "area", "link", "img", "frame", "iframe", "embed",
                       "script", "form", "base", "bgsound", "meta"})
