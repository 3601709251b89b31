"""DKIM verification vectors: the Mail::DKIM corpus (with its FAKE_DNS.dat), the RFC 6376 /
RFC 8463 examples from dkimpy and MimeKit. Keys are served through the resolver's test seam.

Mail::DKIM also verifies pre-standard drafts and DomainKeys; we implement RFC 6376 only.
Every intentional difference is listed in DIFFERENCES with our RFC 6376 answer, so a change in
behaviour is noticed (docs/layers/dkim.md, "Conformance")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gateway_milter.layers.dkim import RESULT_RANK, verify_all
from gateway_milter.net.resolver import Resolver, StaticBackend
from tests.services import shared_path

BASE = shared_path("conformance", "dkim")
MAILDKIM = BASE / "mail-dkim"
MAP = {"pass": "pass", "policy": "pass", "fail": "fail", "permerror": "invalid", "temperror": "invalid",
       "none": "none"}
_DRAFT = "pre-RFC 6376 draft signature (no v=1): RFC 6376 section 3.5 makes v=1 mandatory"
_DK = "DomainKeys (RFC 4870, historic) is not verified"
DIFFERENCES: dict[str, tuple[str, str]] = {
    **{f: ("permerror", _DRAFT) for f in (
        "good_ietf00_1.txt", "good_ietf00_2.txt", "good_ietf00_3.txt", "good_ietf00_4.txt", "good_ietf00_5.txt",
        "mine_ietf01_1.txt", "mine_ietf01_2.txt", "mine_ietf01_3.txt", "mine_ietf01_4.txt", "mine_ietf05_1.txt",
        "good_ietf01_1.txt", "good_ietf01_2.txt", "multiple_1.txt", "bad_ietf01_1.txt", "bad_ietf01_2.txt",
        "bad_ietf01_3.txt", "bad_1.txt", "no_body_1.txt", "no_body_2.txt", "no_body_3.txt")},
    **{f: ("none", _DK) for f in (
        "good_dk_gmail.txt", "good_dk_yahoo.txt", "good_dk_1.txt", "good_dk_2.txt", "good_dk_3.txt",
        "good_dk_4.txt", "good_dk_5.txt", "good_dk_6.txt", "good_dk_7.txt", "dk_headers_1.txt",
        "dk_headers_2.txt", "bad_dk_1.txt", "bad_dk_2.txt", "bad_dk_3.txt", "bad_dk_4.txt", "bad_dk_5.txt",
        "dk_multiple_1.txt")},
    **{f: ("pass", "key g= (granularity) was removed by RFC 6376 and is ignored") for f in (
        "badkey_8.txt", "badkey_9.txt", "badkey_12.txt", "badkey_13.txt")},
    "good_83176.txt": ("permerror", "dkimpy rejects q= lists with unknown methods besides dns/txt"),
    "good_qp_2.txt": ("permerror", "dkimpy does not decode dkim-quoted-printable in i="),
    "good_qp_3.txt": ("permerror", "dkimpy does not decode dkim-quoted-printable in i="),
    "goodkey_2.txt": ("permerror", "dkimpy rejects whitespace around '=' in the key record tag list"),
}


def _fake_dns() -> Resolver:
    be = StaticBackend()
    for line in (MAILDKIM / "FAKE_DNS.dat").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, val = line.partition(" ")
        val = val.strip()
        if val == "NXDOMAIN":
            continue
        be.add(name, "TXT", "TIMEOUT" if val == "~~Query timed out~~" else "SERVFAIL" if val == "~~SERVFAIL~~"
               else [val.strip('"')])
    return Resolver(backend=be)


def _expectations() -> list[tuple[str, str]]:
    if not MAILDKIM.exists():
        return []
    data = json.loads((MAILDKIM / "expected_results.json").read_text())["expectations"]
    return sorted((f, e["default"]) for f, e in data.items())


def _best(raw: bytes, res: Resolver, min_key_bits: int = 512) -> str:
    sigs = verify_all(raw, resolver=res, min_key_bits=min_key_bits)
    return min((s.result for s in sigs), key=lambda r: RESULT_RANK[r]) if sigs else "none"


@pytest.fixture(scope="module")
def fake_dns() -> Resolver:
    return _fake_dns()


@pytest.mark.skipif(not MAILDKIM.exists(), reason="../shared/conformance/dkim not present")
@pytest.mark.parametrize(("name", "expected"), _expectations())
def test_it_matches_the_mail_dkim_corpus(fake_dns: Resolver, name: str, expected: str) -> None:
    got = _best((MAILDKIM / "corpus" / name).read_bytes(), fake_dns)
    if name in DIFFERENCES:
        assert got == DIFFERENCES[name][0], DIFFERENCES[name][1]
    else:
        assert MAP[got] == expected


def _pem_to_p(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))


# RFC 8463 appendix A.2 public keys (the RSA one is dkimpy's test.txt)
BRISBANE = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def _rfc8463_resolver() -> Resolver:
    rsa = (BASE / "dkimpy" / "test.txt").read_text().strip()
    return Resolver(backend=StaticBackend({
        ("brisbane._domainkey.football.example.com", "TXT"): [BRISBANE],
        ("test._domainkey.football.example.com", "TXT"): [rsa],
    }))


@pytest.mark.skipif(not BASE.exists(), reason="../shared/conformance/dkim not present")
@pytest.mark.parametrize("path", ["dkimpy/rfc6376.signed.msg", "mimekit/UnitTests/TestData/dkim/rfc8463-example.msg"])
def test_it_verifies_both_rfc8463_signatures(path: str) -> None:
    sigs = verify_all((BASE / path).read_bytes(), resolver=_rfc8463_resolver())
    assert sorted((s.algorithm, s.result) for s in sigs) == [("ed25519-sha256", "pass"), ("rsa-sha256", "pass")]


@pytest.mark.skipif(not BASE.exists(), reason="../shared/conformance/dkim not present")
def test_it_fails_an_rfc8463_message_whose_body_changed() -> None:
    raw = (BASE / "dkimpy" / "rfc6376.signed.msg").read_bytes()
    tampered = re.sub(rb"(\r?\n\r?\n)", rb"\1Tampered line.\r\n", raw, count=1)
    sigs = verify_all(tampered, resolver=_rfc8463_resolver())
    assert {s.result for s in sigs} == {"fail"}


@pytest.mark.skipif(not BASE.exists(), reason="../shared/conformance/dkim not present")
def test_it_verifies_the_mimekit_gmail_message() -> None:
    d = BASE / "mimekit" / "UnitTests" / "TestData" / "dkim"
    key = "v=DKIM1; k=rsa; p=" + _pem_to_p((d / "gmail.pub").read_text())
    res = Resolver(backend=StaticBackend({("20120113._domainkey.gmail.com", "TXT"): [key]}))
    assert _best((d / "gmail.msg").read_bytes(), res, 1024) == "pass"


def test_it_lists_a_reason_for_every_difference() -> None:
    assert all(reason for _, reason in DIFFERENCES.values())
    if MAILDKIM.exists():
        names = {f for f, _ in _expectations()}
        assert set(DIFFERENCES) <= names
        assert Path(MAILDKIM / "corpus").exists()
