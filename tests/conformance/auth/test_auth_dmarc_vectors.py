"""DMARC vectors: OpenDMARC's record-parse and alignment cases and the PSL test list.

OpenDMARC is lenient in places RFC 7489 is not; those cases are listed in DIFFERENCES with
our answer and the reason (docs/layers/dmarc.md, "Conformance")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway_milter.auth.psl import aligned, org_domain
from gateway_milter.layers.dmarc import RecordError, parse_record
from tests.services import shared_path

BASE = shared_path("conformance", "dmarc")
VECTORS = BASE / "opendmarc_vectors.json"
PSL = BASE / "psl_tests.txt"

RECORD_DIFFERENCES = {
    "v=DMARC1; p=n;": ("ERROR_BAD_VALUE", "p= must be none, quarantine or reject (RFC 7489 section 6.3)"),
}
ALIGN_DIFFERENCES = {
    (".mac.com.", "mac.com"): (False, "a leading dot makes an invalid name; OpenDMARC trims dots"),
    ("....mac.com....", "mac.com"): (False, "dots are not trimmed from invalid names"),
}


def _load() -> dict[str, Any]:
    return json.loads(VECTORS.read_text()) if VECTORS.exists() else {"record_parse": [], "alignment": []}


DATA = _load()


def _code(record: str) -> str:
    try:
        parse_record(record)
    except RecordError as e:
        return e.code
    return "OKAY"


@pytest.mark.skipif(not VECTORS.exists(), reason="../shared/conformance/dmarc not present")
@pytest.mark.parametrize("case", DATA["record_parse"], ids=lambda c: c["record"][:40] or "empty")
def test_it_parses_records_like_opendmarc(case: dict[str, str]) -> None:
    want = RECORD_DIFFERENCES.get(case["record"], (case["expected"], ""))[0]
    assert _code(case["record"]) == want


@pytest.mark.skipif(not VECTORS.exists(), reason="../shared/conformance/dmarc not present")
@pytest.mark.parametrize("case", DATA["alignment"], ids=lambda c: f"{c['from_domain']}-{c['auth_domain']}")
def test_it_aligns_like_opendmarc(case: dict[str, Any]) -> None:
    key = (case["from_domain"], case["auth_domain"])
    want = ALIGN_DIFFERENCES.get(key, (case["aligned"], ""))[0]
    assert aligned(case["from_domain"], case["auth_domain"], case["mode"] == "strict") is want


def _psl_cases() -> list[tuple[str | None, str | None]]:
    if not PSL.exists():
        return []
    out = []
    for line in PSL.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        a, b = line.split()
        out.append((None if a == "null" else a, None if b == "null" else b))
    return out


def _idna(d: str | None) -> str | None:
    return None if d is None else ".".join(p.encode("idna").decode() if not p.isascii() else p.lower()
                                           for p in d.split("."))


@pytest.mark.skipif(not PSL.exists(), reason="../shared/conformance/dmarc not present")
@pytest.mark.parametrize(("domain", "expected"), _psl_cases())
def test_it_finds_the_organisational_domain(domain: str | None, expected: str | None) -> None:
    # IDN answers come back as A-labels (what DNS carries); compare in that form
    assert (org_domain(domain) if domain else None) == _idna(expected)


def test_it_parses_a_full_record() -> None:
    r = parse_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=50; "
                     "rua=mailto:a@example.net!10m,ftp://x.example; fo=1")
    assert (r.p, r.sp, r.adkim, r.aspf, r.pct, r.rua) == ("reject", "quarantine", "s", "r", 50,
                                                           ("mailto:a@example.net!10m",))
