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
from itertools import islice

from gateway_milter.antispam.saview import SaMessage
from gateway_milter.antispam.urls import org_domain, url_host

MAX_WORDS = 4000  # words of body text considered (hostile input: 100k tokens stay cheap)
MAX_FEATURES = 12000
OSB_WINDOW = 1  # word pairs at distance 1..OSB_WINDOW; 1 measured best (docs/decisions/0042)
HEADERS = ("subject", "from", "reply-to", "sender", "return-path", "content-type", "x-mailer",
           "user-agent", "x-mimeole", "mime-version", "list-id", "list-unsubscribe", "organization",
           "content-transfer-encoding", "x-priority", "importance", "precedence")
_IGNORED = re.compile(r"(?i)^(x-(.*-)?spam(-.*)?|x-virus.*|x-bulwark.*|x-amavis.*|x-quarantine.*|"
                      r"x-bogosity|x-dspam.*|x-crm114.*|authentication-results|arc-.*|x-ms-exchange-.*|"
                      r"received-spf|x-original-.*)$")
MAX_RECEIVED = 12
_RCVD_HOST = re.compile(r"(?i)\b(?:from|by)\s+([a-z0-9][a-z0-9.-]*\.[a-z]{2,})")
_RCVD_IP = re.compile(r"\[(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}\]")
_WORD = re.compile(r"[^\W_](?:[\w'$%.,-]*[^\W_])?")
_NUM = re.compile(r"^[\d.,]+$")


def is_ignored_header(name: str) -> bool:
    return bool(_IGNORED.match(name))


def _words(text: str, limit: int) -> list[str]:
    out: list[str] = []
    append = out.append
    # at most 3 * limit matches: one-letter words are dropped but bounded too (hostile input)
    for w in islice(_WORD.findall(text.lower()) if len(text) <= 20 * limit else
                    (m.group(0) for m in _WORD.finditer(text.lower())), 3 * limit):
        n = len(w)
        if n < 2:
            continue
        if n > 20:
            # long strings (base64 blobs, hashes) carry little but their shape
            append(f"skip:{w[0]}:{n // 10 * 10}")
        elif w[0].isdigit() and _NUM.match(w):
            append(f"num:{n}")
        else:
            append(w)
        if len(out) >= limit:
            break
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
        if ln not in HEADERS or is_ignored_header(name):
            continue
        if ln in ("from", "reply-to", "sender", "return-path"):
            for part in re.findall(r"[\w.+-]+@[\w.-]+|[\w']+", value.lower())[:20]:
                if "@" in part:
                    local, _, dom = part.partition("@")
                    add(f"{ln}:addr:{part}")
                    add(f"{ln}:dom:{dom}")
                else:
                    add(f"{ln}:{part}")
        elif ln == "subject":
            for w in _words(value, 50):
                add(f"subj:{w}")
        elif ln == "content-type":
            add(f"ct:{value.split(';')[0].strip().lower()}")
            cs = re.search(r'(?i)charset="?([\w.-]+)', value)
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
        path = re.sub(r"^[a-z]+://[^/]*", "", u.lower())
        for w in re.findall(r"[a-z]{3,15}", path)[:10]:
            add(f"url-w:{w}")
    if m.has_html:
        add("html:yes")
        for tag in list(m.html.tags)[:60]:
            add(f"tag:{tag}")
    body = "\n".join(m.paragraphs[1:] if m.subject else m.paragraphs)
    words = _words(body, MAX_WORDS)
    feats.update(dict.fromkeys(words))
    for d in range(1, OSB_WINDOW + 1):
        sep = f"|{d}|"
        feats.update(dict.fromkeys(map(sep.join, zip(words, words[d:], strict=False))))
    out = list(feats)
    return out if len(out) <= MAX_FEATURES else out[:MAX_FEATURES]


_BLAKE2B_48 = hashlib.blake2b(digest_size=6)  # copied per feature: half the cost of a new one


def hashed(features: Iterable[str]) -> list[str]:
    """Store keys for features: 48-bit BLAKE2b, hex."""
    out: list[str] = []
    append, fresh = out.append, _BLAKE2B_48.copy
    for f in features:
        h = fresh()
        h.update(f.encode("utf-8", "surrogatepass"))
        append(h.hexdigest())
    return out
