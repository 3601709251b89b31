"""Bayes tokenizer: words of the decoded, rendered text, selected headers, URL parts and
attachment names, plus word pairs over the text (orthogonal sparse bigrams, Siefkes et al. 2004,
with a window of ``OSB_WINDOW``; adjacent pairs only measured best with chi-square combining,
docs/decisions/0042-bayes-classifier.md).

Headers added by other filters (``X-Spam-*``, ``X-*-Spam-*``, virus scanners, our own
``X-Bulwark-*``) are never seen: otherwise the classifier learns the previous filter's verdict
instead of the message. Recipient-specific headers (To, Cc, Delivered-To) are left out too:
they describe the mailbox, not the message, and make per-corpus results look better than they
are. Of the Received headers only the relay path is used (organisational domains of the
``from``/``by`` hosts and the /24 of bracketed IPv4 addresses of the first ``MAX_RECEIVED``):
the sending infrastructure is evidence (training-part cross-validation: spam caught at
<= 0.1 % FP 80.2 -> 82.1 %, about half of it from the public corpus' collecting servers;
docs/decisions/0042-bayes-classifier.md).

Features are hashed to 48-bit hex strings (collisions are negligible below ~10^7 features) so
that the token store holds fixed-size keys and never message text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from itertools import chain, islice

from gateway_milter.antispam.saview import SaMessage
from gateway_milter.antispam.urls import org_domain, url_host
from gateway_milter.net.networks import relay_network

MAX_WORDS = 4000  # words of body text considered (hostile input: 100k tokens stay cheap)
MAX_FEATURES = 12000
OSB_WINDOW = 1  # word pairs at distance 1..OSB_WINDOW; 1 measured best (docs/decisions/0042)
HEADERS = ("subject", "from", "reply-to", "sender", "return-path", "content-type", "x-mailer",
           "user-agent", "x-mimeole", "mime-version", "list-id", "list-unsubscribe", "organization",
           "content-transfer-encoding", "x-priority", "importance", "precedence")
# another filter's verdict: SpamAssassin's X-Spam-* (and X-Spam_* of some setups), X-*-Spam-*,
# X-*-Antispam-* (Microsoft 365's X-Microsoft-Antispam*, X-Forefront-Antispam-Report), spamd's
# and rspamd's (X-Spamd-*, X-Rspamd-*), X-Ham-Report, SpamBayes', virus scanners', our own;
# SpamExperts', SpamTest's, MailScanner's, Spamina's, X-SpamAssassin, X-SpamScore, X-*-Junk-*, the appliances' own (X-Barracuda-*,
# X-Cloudmark-* and its X-CMAE-*, X-ESET-*, Trend Micro's X-TMASE-* and X-TM-AS-*, Sophos',
# Halon's), other verdicts (X-UCE-Status, X-Policyd-Weight, X-Bayes-*, X-Recommended-Action,
# X-Greylist, X-Scanned-By), a mailbox export's folder labels (X-Gmail-Labels: "Spam") and the
# names SpamAssassin's Bayes ignores (below). Not every name with "spam" in it: X-Spammer-Name is the sender's
_IGNORED = re.compile(r"(?i)^(x-(.*-)?(anti-?)?spamd?([-_].*)?|x-rspamd.*|x-ham-report|x-spambayes.*|"
                      r"x-spamexperts.*|x-spamtest.*|x-spamassassin.*|x-spamina.*|x-(.*-)?spam-?(score|check).*|"
                      r"x-mailscanner.*|x-(.*-)?junk([-_].*)?|"
                      r"x-barracuda.*|x-cloudmark.*|x-cmae-.*|x-eset.*|x-tmase.*|x-tm-as.*|x-sophos.*|"
                      r"x-halon.*|x-uce-status|x-policyd-weight|x-bayes.*|x-recommended-action|"
                      r"x-greylist.*|x-scanned-by|x-gmail-labels|"
                      r"x-bulwark.*|x-amavis.*|x-quarantine.*|"
                      r"x-bogosity|x-dspam.*|x-crm114.*|authentication-results|arc-.*|x-ms-exchange-.*|"
                      r"received-spf|x-original-.*|"
                      # SpamAssassin's Bayes ignores these too ($IGNORED_HDRS): other filters'
                      # and scanners' fields, and the annotations mail stores and readers add
                      # at the end of the header (an exported junk folder's X-Keywords: $Junk,
                      # an mbox's Status: RO on read ham taught how the mail was collected)
                      r"x-rbl-warning|x-pyzor|x-dcc-.*|x-filtered-by|x-scanner|x-spamcop-.*|x-smtpd|"
                      r"(x-)?spam-apparently-to|spam|x-mass-check-id|x-mdaemon-deliver-to|"
                      r"(x-)?status|x-flags|x-keywords|replied|forwarded|lines|content-length|x-uidl?|"
                      r"x-imapbase|x-mozilla-.*|x-vm-.*|x-gnus-mail-source|xref|x-originalarrivaltime|"
                      r"x-(.*-)?(anti-?)?virus.*|x-ironport-.*|x-clamav.*|x-proofpoint-.*|x-kaspersky.*)$")
MAX_RECEIVED = 12
# "from" or "by" as a word, any case, and the host name after it: the same matches as
# "(?i)\b(?:from|by)\s+([a-z0-9][a-z0-9.-]*\.[a-z]{2,})" (no other character matches those
# letters case-insensitively; the look-behind is the \b), but a leading character class lets the
# engine skip to candidate letters instead of trying the pattern at every position
# (0.026 -> 0.010 ms per message's Received headers)
_RCVD_HOST = re.compile(r"[bBfF](?<!\w[bBfF])(?:(?<=[bB])[yY]|(?<=[fF])[rR][oO][mM])"
                        r"(?i:\s+([a-z0-9][a-z0-9.-]*\.[a-z]{2,}))")
_RCVD_IP = re.compile(r"\[(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}\]")
# A word: a letter or digit, then letters, digits and ' $ % . , - _ ending in a letter or digit.
# Written as runs of letters/digits joined by runs of the others, possessively: the same matches
# as "[^\W_](?:[\w'$%.,-]*[^\W_])?" without backtracking from each word's end to its last letter
# (findall 0.097 -> 0.079 ms per 4-6 KB corpus message; a test pins the two as equal)
# The repeat of the group is an atomic group around a greedy repeat, not ``(?:...)*+``: the
# same matches, but Python before 3.11.5 (Debian 12 ships 3.11.2) matches a possessive repeat
# of a group wrongly when the group can backtrack (CPython gh-106052: "bob, prices" gave
# "bob,"); a repeat of one character class (``[^\W_]++``) is not affected.
_WORD = re.compile(r"[^\W_]++(?>(?:[_'$%.,-]++[^\W_]++)*)")
# the same on ASCII text (\w there is [a-zA-Z0-9_]): a character set instead of Unicode category
# look-ups (0.110 -> 0.086 ms per 4-6 KB ASCII corpus message, 5 in 6 of them; isascii() is a flag)
_WORD_ASCII = re.compile(r"[a-zA-Z0-9]++(?>(?:[_'$%.,-]++[a-zA-Z0-9]++)*)")
# _WORD_ASCII's matches without the expression: a match runs from the first letter or digit of
# a run of letters, digits and joiners to its last letter or digit (the possessive repeats
# take the whole run), and a run holds one match or none (joiners alone). So every other
# character becomes a space, the text is split on spaces and each piece loses the joiners at
# its ends (0.43 -> 0.13 M instructions for a 4-6 KB corpus message's body; a test compares
# the two on the corpus and on random text)
_JOINERS = "_'$%.,-"
_ASCII_WORD_RUNS = str.maketrans({i: " " for i in range(128) if not chr(i).isalnum() and chr(i) not in _JOINERS})
_NUM = re.compile(r"^[\d.,]+$")
_ADDRESS_PARTS = re.compile(r"[\w.+-]+@[\w.-]+|[\w']+")
# address_parts' pieces of _ADDRESS_PARTS: where either alternative can start, the local part's
# run, the domain's, a word
_PART_START = re.compile(r"[\w.+'-]")
_LOCAL_RUN = re.compile(r"[\w.+-]+")
_DOMAIN_RUN = re.compile(r"[\w.-]+")
_ADDRESS_WORD = re.compile(r"[\w']+")
MAX_ADDRESS_PARTS = 20  # of each address header
SHORT_ADDRESS_VALUE = 256  # characters: findall's time on a shorter value is small however it is made
_CHARSET = re.compile(r'(?i)charset="?([\w.-]+)')
_URL_SCHEME_HOST = re.compile(r"^[a-z]+://[^/]*")
_URL_WORD = re.compile(r"[a-z]{3,15}")
_ADDRESS_HEADERS = frozenset(("from", "reply-to", "sender", "return-path"))
# HEADERS as a set; none of them is an ignored header (a test pins it), so a header in it is
# used without matching _IGNORED
_USED_HEADERS = frozenset(HEADERS)


def is_ignored_header(name: str) -> bool:
    return bool(_IGNORED.match(name))


def _shape(w: str) -> str:
    """A word as a feature: long strings (base64 blobs, hashes) carry little but their shape,
    numbers only their length."""
    n = len(w)
    if n > 20:
        return f"skip:{w[0]}:{n // 10 * 10}"
    if _NUM.match(w):
        return f"num:{n}"
    return w


def _words(text: str, limit: int) -> list[str]:
    low = text.lower()
    ascii_ = low.isascii()
    word = _WORD_ASCII if ascii_ else _WORD
    # at most 3 * limit matches: one-letter words are dropped but bounded too (hostile input)
    if len(text) <= 20 * limit:
        if ascii_:  # _WORD_ASCII's matches, split in C (_ASCII_WORD_RUNS)
            found = [w for w in [t.strip(_JOINERS) for t in low.translate(_ASCII_WORD_RUNS).split()] if w]
        else:
            found = word.findall(low)
        del found[3 * limit:]
        # comprehensions over the matches instead of one loop with appends (0.067 -> 0.038 ms
        # per 4-6 KB corpus message)
        words = [w for w in found if len(w) > 1]
        del words[limit:]
    else:  # a long text (a newsletter, or hostile input): matched lazily, only as far as needed
        words = []
        for match in islice(word.finditer(low), 3 * limit):
            w = match.group(0)
            if len(w) > 1:
                words.append(w)
                if len(words) >= limit:
                    break
    # only long words and words starting with a digit can change: a number (``_NUM``) starts
    # with one, as a word cannot start with . or ,
    return [w if len(w) <= 20 and not w[0].isdigit() else _shape(w) for w in words]


def address_parts(value: str, limit: int = MAX_ADDRESS_PARTS) -> list[str]:
    """The first ``limit`` matches of _ADDRESS_PARTS in ``value`` (``findall(value)[:limit]``),
    in time linear in the value. ``re`` tries the address alternative at every character of a
    run of ``[\\w.+-]`` and each try reads to the run's end before it finds no ``@`` there: a
    From of 60,000 dashes or dots took 5 s (tests/unit/antispam/test_fuzz_regressions.py).
    The alternative matches at a position exactly when the run from there is followed by ``@``
    and a domain character, and every position of a run ends where the run does: each run is
    read once."""
    if len(value) <= SHORT_ADDRESS_VALUE:
        return _ADDRESS_PARTS.findall(value)[:limit]
    out: list[str] = []
    pos = 0
    run_start = run_end = -1  # the run of [\\w.+-] that holds pos, once read
    while len(out) < limit:
        start = _PART_START.search(value, pos)  # (no match of either alternative begins before it)
        if start is None:
            break
        pos = start.start()
        if not run_start <= pos < run_end:
            run = _LOCAL_RUN.match(value, pos)
            run_start, run_end = (pos, run.end()) if run is not None else (-1, -1)
        if run_start <= pos < run_end and value.startswith("@", run_end):
            domain = _DOMAIN_RUN.match(value, run_end + 1)
            if domain is not None:
                out.append(value[pos:domain.end()])
                pos = domain.end()
                continue
        word = _ADDRESS_WORD.match(value, pos)
        if word is not None:
            out.append(word.group())
            pos = word.end()
        else:  # (a . + or - of a run the address fails on, at each of its characters: on to a word's)
            nxt = _ADDRESS_WORD.search(value, pos + 1, run_end)
            pos = nxt.start() if nxt is not None else run_end
    return out


def tokens(m: SaMessage) -> list[str]:
    """Readable features of a message (deduplicated, bounded)."""
    feats: dict[str, None] = {}
    add = feats.setdefault  # bounded once at the end (MAX_FEATURES)

    received = 0
    for name, value in m.headers:
        ln = name.lower()
        if ln == "received":
            received += 1
            if received <= MAX_RECEIVED:
                for host in _RCVD_HOST.findall(value)[:2]:
                    add("rcvd-dom:" + org_domain(host.lower()))
                for net in _RCVD_IP.findall(value)[:2]:
                    add("rcvd-ip:" + net)
            continue
        if ln not in _USED_HEADERS:
            continue
        if ln in _ADDRESS_HEADERS:
            for part in address_parts(value.lower()):
                if "@" in part:
                    add(f"{ln}:addr:{part}")
                    add(f"{ln}:dom:{part.partition('@')[2]}")
                else:
                    add(f"{ln}:{part}")
        elif ln == "subject":
            for w in _words(value, 50):
                add("subj:" + w)
        elif ln == "content-type":
            add(f"ct:{value.split(';')[0].strip().lower()}")
            cs = _CHARSET.search(value)
            if cs:
                add(f"charset:{cs.group(1).lower()}")
        else:
            add(f"{ln}:{' '.join(value.lower().split())[:60]}")
    mid = m.header("Message-ID") or ""
    if "@" in mid:
        add("msgid-dom:" + mid.rpartition("@")[2].strip(" >").lower()[:60])
    for ct in m.content_types:
        add(f"part:{ct}")
    for name in m.attachment_names[:50]:
        low = name.lower()
        add(f"att:{low[:60]}")
        if "." in low:
            add(f"att-ext:{low.rsplit('.', 1)[1][:10]}")
    for u in m.uris[:100]:
        host = url_host(u)
        if host:
            add(f"url-host:{host}")
            add(f"url-dom:{org_domain(host)}")
        path = _URL_SCHEME_HOST.sub("", u.lower())
        for w in _URL_WORD.findall(path)[:10]:
            add(f"url-w:{w}")
    if m.has_html:
        add("html:yes")
        for tag in islice(m.html.tags, 60):
            add(f"tag:{tag}")
    body = "\n".join(m.paragraphs[1:] if m.subject else m.paragraphs)
    words = _words(body, MAX_WORDS)
    # the body's words and word pairs deduplicated with the features above in one dict built in
    # C (two more dicts merged into ``feats``: 0.080 ms, this: 0.065 per 4-6 KB corpus message)
    pairs = [map(f"|{d}|".join, zip(words, words[d:], strict=False)) for d in range(1, OSB_WINDOW + 1)]
    out = list(dict.fromkeys(chain(feats, words, *pairs)))
    return out if len(out) <= MAX_FEATURES else out[:MAX_FEATURES]


MAX_ORDER_HEADERS = 60  # header fields the order features look at (hostile input: bounded)
ORDER = "hseq:"  # the header-order features' prefix (no feature of tokens() has it)


def header_order(m: SaMessage) -> list[str]:
    """Features of the token model only (docs/decisions/0058-header-order.md): the order of the
    header fields the sender wrote, as pairs of adjacent field names (``hseq:from>to``). Only
    the fields after the last Received are read (trace fields and whatever a relay or mailbox
    put above them say nothing about the sending software, and in a corpus they say how it was
    collected), and no field added by another filter (``is_ignored_header``). A mailer writes
    its fields in an order of its own, which a spamware's rarely imitates; the values are not
    read (the tokens have those)."""
    names = [name.lower()[:40] for name, _v in m.headers]
    last = len(names) - 1 - names[::-1].index("received") if "received" in names else -1
    own = [n for n in names[last + 1:last + 1 + MAX_ORDER_HEADERS] if not _IGNORED.match(n)]
    return list(dict.fromkeys(f"{ORDER}{a}>{b}" for a, b in zip(own, own[1:], strict=False)))


SENDER = "sender-net:"  # the sender-history feature's prefix (no feature of tokens() has it)


def sender_key(m: SaMessage) -> str | None:
    """The sender-history feature: the From address and the network the message came from (the
    first untrusted relay: in the milter, the client that connected; /16 for IPv4, /48 for
    IPv6, masked as greylisting masks), as SpamAssassin's TxRep keys a sender. A spammer who
    forges a known sender's From does not send from that sender's network, so the key is not
    theirs to borrow. None without a From address. Learned with the message's tokens; read in
    the same round trip, but not part of the chi-square combining (its counts become the
    BAYES_SENDER_* symbols, docs/decisions/0055-sender-history.md)."""
    addr = m.header("From:addr")  # (the first From address, as the rules read it)
    if not addr or "@" not in addr:
        return None
    untrusted = m.relays().untrusted
    return f"{SENDER}{addr.strip().lower()[:200]}|{relay_network(untrusted[0].ip, 16, 48) if untrusted else 'local'}"


_BLAKE2B_48 = hashlib.blake2b(digest_size=6)  # copied per feature: half the cost of a new one


def hashed(features: Iterable[str]) -> list[str]:
    """Store keys for features: 48-bit BLAKE2b, hex. (A memo of recent features' keys ran fewer
    instructions but took more time: docs/decisions/0062-feature-key-memo.md.)"""
    out: list[str] = []
    append, fresh = out.append, _BLAKE2B_48.copy
    for f in features:
        h = fresh()
        h.update(f.encode("utf-8", "surrogatepass"))
        append(h.hexdigest())
    return out
