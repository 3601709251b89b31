"""RFC 5235 section 3.1: spamtest is "0" when the message was not tested for spam, "1" when it
was tested and found clean. With the scoring layer off nothing gives the gateway's total, so
spamtest must say "not tested", not "tested and clean"."""

from __future__ import annotations

from typing import Any

from gateway_milter import layers
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.sieve.policy import SievePolicyEngine
from gateway_milter.verdict import Action
from tests.unit.sieve.helpers import make_ctx

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
MSG = b"From: Alice <alice@sender.test>\nTo: user@example.com\nSubject: Hello\n\n" + GTUBE + b"\n"
SCRIPT = ('require ["spamtestplus", "relational", "comparator-i;ascii-numeric", "variables", "editheader"];\n'
          'if spamtest :matches "*" { addheader "X-Spamtest" "${1}"; }\n'
          'if spamtest :percent :matches "*" { addheader "X-Spamtest-Percent" "${1}"; }\n')


def _values(scoring: dict[str, Any], auth_user: str = "") -> dict[str, str]:
    settings: dict[str, Any] = {lid: {"mode": "off"} for lid in layers.available() if lid != "scoring"}
    settings["scoring"] = scoring
    s = PolicySnapshot.from_document({"gateway": {"hostname": "mx.example.com"}, "settings": settings,
                                      "domains": [{"name": "example.com"}],
                                      "scripts": [{"name": "st", "source": SCRIPT}]})
    ctx = make_ctx(s, MSG)
    if auth_user:
        ctx.conn.macros["{auth_authen}"] = auth_user
    o = SievePolicyEngine(s).message(ctx)
    assert o.action is Action.ACCEPT
    return {e.name: e.value for e in o.header_edits}


def test_it_gives_0_when_the_scoring_layer_is_off() -> None:
    assert _values({"mode": "off"}) == {"X-Spamtest": "0", "X-Spamtest-Percent": "0"}


def test_it_gives_the_total_when_the_scoring_layer_ran() -> None:
    # mode score: no system script, spamtest runs the layer itself; GTUBE scores 1000
    assert _values({"mode": "score", "layers": []}) == {"X-Spamtest": "10", "X-Spamtest-Percent": "100"}


def test_it_gives_0_for_exempt_mail_which_no_spam_layer_tested() -> None:
    # an authenticated sender is exempt (exempt_authenticated): scored 0 untested, so "not tested"
    assert _values({"mode": "score", "layers": []}, auth_user="alice") == {"X-Spamtest": "0",
                                                                          "X-Spamtest-Percent": "0"}
    # with the exemption off the same message is tested and gets its total
    assert _values({"mode": "score", "layers": [], "exempt_authenticated": False}, auth_user="alice") == {
        "X-Spamtest": "10", "X-Spamtest-Percent": "100"}
