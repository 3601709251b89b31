"""Organisational domains from the Public Suffix List (RFC 7489 section 3.2), offline.

The list is the snapshot shipped inside the ``publicsuffix2`` package (no download, ever; see
docs/decisions/0021-offline-public-suffix-list.md). ``GATEWAY_PSL_FILE`` may name a newer
``public_suffix_list.dat`` that the operator maintains. The lookup follows the PSL algorithm
(https://publicsuffix.org/list/ "Algorithm"): exception rules win, then the longest matching
rule, then the implicit ``*`` rule; ICANN and private sections are both used, as DMARC
implementations commonly do.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import publicsuffix2


@functools.lru_cache(maxsize=1)
def _rules() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    path = os.environ.get("GATEWAY_PSL_FILE") or str(Path(publicsuffix2.__file__).parent / "public_suffix_list.dat")
    normal: set[str] = set()
    wild: set[str] = set()
    exceptions: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            rule = line.strip().split()[0] if line.strip() else ""
            if not rule or rule.startswith("//"):
                continue
            rule = _idna(rule.lstrip("!").lstrip("*.")) if not rule.startswith(("!", "*.")) else rule
            if rule.startswith("!"):
                exceptions.add(_idna(rule[1:]))
            elif rule.startswith("*."):
                wild.add(_idna(rule[2:]))
            else:
                normal.add(rule)
    return frozenset(normal), frozenset(wild), frozenset(exceptions)


def _idna(label: str) -> str:
    try:
        return label.encode("idna").decode("ascii").lower() if not label.isascii() else label.lower()
    except UnicodeError:
        return label.lower()


def is_tld(label: str) -> bool:
    """A top-level domain of the Public Suffix List (ICANN and private sections)."""
    return _idna(label) in _tlds()


def top_level_domains() -> frozenset[str]:
    """Every top-level domain of the list (A-labels)."""
    return _tlds()


@functools.lru_cache(maxsize=1)
def _tlds() -> frozenset[str]:
    normal, wild, _exceptions = _rules()
    return frozenset(r for r in normal | wild if "." not in r)


@functools.lru_cache(maxsize=1)
def _deepest() -> int:
    """Labels in the longest name a rule can match: a normal or exception rule's own, a
    wildcard rule's and one more."""
    normal, wild, exceptions = _rules()
    return max([r.count(".") + 1 for r in normal | exceptions] + [r.count(".") + 2 for r in wild] + [1])


def public_suffix(domain: str) -> str | None:
    d = _clean(domain)
    if d is None:
        return None
    normal, wild, exceptions = _rules()
    labels = d.split(".")
    # candidates longer than any rule cannot match: a name of thousands of labels (a hostile
    # host) was joined again from each label, time square in its length (1.3 s for 32 KB)
    for i in range(max(0, len(labels) - _deepest()), len(labels)):
        cand = ".".join(labels[i:])
        if cand in exceptions:
            return ".".join(labels[i + 1:])
        parent = ".".join(labels[i + 1:])
        if cand in normal or (parent and parent in wild):
            return cand
    return labels[-1]  # the implicit "*" rule


def org_domain(domain: str) -> str | None:
    """``mail.example.co.uk`` -> ``example.co.uk``; None for a public suffix or a bad name."""
    d = _clean(domain)
    if d is None:
        return None
    suffix = public_suffix(d)
    if suffix is None or suffix == d:
        return None
    labels = d.split(".")
    n = len(suffix.split(".")) + 1
    return ".".join(labels[-n:])


@functools.lru_cache(maxsize=4096)
def _clean(domain: str) -> str | None:
    if not domain:
        return None
    d = domain.strip().lower()
    if d.startswith(".") or ".." in d:
        return None
    d = d.rstrip(".")
    if not d:
        return None
    try:
        return ".".join(_idna(label) for label in d.split("."))
    except UnicodeError:
        return None


def aligned(a: str, b: str, strict: bool) -> bool:
    """DMARC identifier alignment (RFC 7489 section 3.1): strict needs equal names; relaxed
    needs equal organisational domains."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if not a or not b:
        return False
    if a == b:
        return True
    if strict:
        return False
    oa, ob = org_domain(a), org_domain(b)
    return oa is not None and oa == ob
