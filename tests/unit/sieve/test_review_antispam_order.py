"""gateway.layer_order reorders the system scripts (docs/policy/file.md): the Sieve engine, the
one engine_for builds, must run them in that order, as the rule engine does."""

from __future__ import annotations

from gateway_milter.policy.evaluate import RulePolicyEngine
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.sieve.policy import SievePolicyEngine
from tests.unit.sieve.helpers import make_ctx, only_layers

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
MSG = b"From: x@spam.test\nTo: user@example.com\nSubject: Hello\n\n" + GTUBE + b"\n"


def _snap(order: list[str]) -> PolicySnapshot:
    return PolicySnapshot.from_document({
        "gateway": {"hostname": "mx.example.com", "layer_order": order},
        "settings": {**only_layers("lists", "scoring"), "scoring": {"layers": []}},
        "domains": [{"name": "example.com"}],
        "lists": [{"list": "block", "kind": "sender", "value": "*@spam.test"}],
    })


def test_it_runs_the_system_scripts_in_the_layer_order() -> None:
    # both the sender block list and the spam score refuse this message: the first to run decides
    s = _snap([])
    assert SievePolicyEngine(s).message(make_ctx(s, MSG, mail_from="x@spam.test")).decided_by \
        == "system:lists:blocklist_sender"
    s = _snap(["scoring"])
    sieve = SievePolicyEngine(s)
    assert sieve.message(make_ctx(s, MSG, mail_from="x@spam.test")).decided_by == "system:scoring:spam_reject"
    assert RulePolicyEngine(s).message(make_ctx(s, MSG, mail_from="x@spam.test")).decided_by \
        == "system:scoring:spam_reject"
    names = [x["name"] for x in sieve.scripts(None)]
    assert names.index("system:scoring") < names.index("system:lists")


def test_admin_scripts_positioned_by_layer_follow_the_layer_order() -> None:
    doc = {"gateway": {"hostname": "mx.example.com", "layer_order": ["scoring"]},
           "settings": {**only_layers("lists", "scoring"), "scoring": {"layers": []}},
           "domains": [{"name": "example.com"}],
           "scripts": [{"name": "a", "position": "after:scoring", "source": "keep;"},
                       {"name": "b", "position": "before:lists", "source": "keep;"}]}
    names = [x["name"] for x in SievePolicyEngine(PolicySnapshot.from_document(doc)).scripts(None)]
    assert names.index("system:scoring") < names.index("a") < names.index("b") < names.index("system:lists")
