"""RFC example scripts and sievelib's parser cases parse as expected."""

from __future__ import annotations

import ast
import json

import pytest

from gateway_milter.sieve import validate
from gateway_milter.sieve.grammar import parse
from tests.services import shared_path

# sievelib cases where our answer differs from sievelib's, and why ours is right.
SIEVELIB_DIFFERENCES = {
    "test_add_command": "sievelib registers a custom 'mytest' command for this case; we do not know it",
    "test_complex_allof_with_not": "RFC 5429 2.2: reject takes a reason string; 'reject;' is invalid",
    "test_reject_extension": "RFC 5429 2.2: reject takes a reason string; 'reject;' is invalid",
    "test_imap4flags_hasflag": "RFC 5232 3: the variable-name form needs require \"variables\"",
    "test_vacationext_basic": "vacation (RFC 5230) is not offered by a gateway",
    "test_vacationext_medium": "vacation (RFC 5230) is not offered by a gateway",
    "test_vacationext_with_limit": "vacation (RFC 5230) is not offered by a gateway",
    "test_vacationext_with_single_mail_address": "vacation (RFC 5230) is not offered by a gateway",
    "test_vacationext_with_multiline": "vacation (RFC 5230) is not offered by a gateway",
    "test_vacation_seconds": "vacation (RFC 5230) is not offered by a gateway",
    "test_notify_extension": "enotify (RFC 5435) is not offered by a gateway",
}


def test_it_parses_every_rfc_example() -> None:
    d = shared_path("conformance/sieve/rfc-examples")
    if not d.is_dir():
        pytest.skip("../shared/conformance/sieve/rfc-examples not present")
    files = sorted(d.glob("*.sieve"))
    assert files
    for f in files:
        parse(f.read_text())  # raises SieveError with line:column on a syntax error


def test_it_agrees_with_sievelib_parser_cases() -> None:
    f = shared_path("conformance/sieve/sievelib_parser_cases.json")
    if not f.is_file():
        pytest.skip("../shared/conformance/sieve/sievelib_parser_cases.json not present")
    raw = json.loads(f.read_text())["cases"]
    cases = ast.literal_eval(raw) if isinstance(raw, str) else raw
    wrong = []
    for c in cases:
        got = "ok" if not validate(c["script"]) else "error"
        if (got == c["expect"]) == (c["test"] in SIEVELIB_DIFFERENCES):
            wrong.append(f"{c['class']}.{c['test']}: expected {c['expect']}, got {got}")
    assert not wrong, "\n".join(wrong)
