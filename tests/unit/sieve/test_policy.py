"""The Sieve-ordered policy: system scripts from layer settings, admin scripts by position."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_milter.layers.base import SettingsError
from gateway_milter.policy.evaluate import RulePolicyEngine, engine_for
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.sieve.policy import SievePolicyEngine
from gateway_milter.verdict import Action, QuarantineQueue
from tests.unit.sieve.helpers import make_ctx, only_layers

MSG = b"From: Alice <alice@sender.test>\nTo: user@example.com\nSubject: Hello\n\nA body with a discount.\n"


def doc(**extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "gateway": {"hostname": "mx.example.com"},
        "settings": only_layers("lists"),
        "domains": [{"name": "example.com"}, {"name": "other.example", "settings": {"lists": {"block_action": "quarantine"}}}],
        "lists": [
            {"list": "block", "kind": "sender", "value": "*@spam.test"},
            {"list": "block", "kind": "recipient", "value": "closed@example.com"},
            {"list": "block", "kind": "ip", "value": "192.0.2.0/24"},
        ],
    }
    d.update(extra)
    return d


def snap(**extra: Any) -> PolicySnapshot:
    return PolicySnapshot.from_document(doc(**extra))


def test_it_is_the_engine_evaluate_builds() -> None:
    assert isinstance(engine_for(snap()), SievePolicyEngine)


@pytest.mark.parametrize("mail_from,ip,rcpt,expect", [
    ("x@spam.test", "203.0.113.5", "user@example.com", Action.REJECT),
    ("x@ok.test", "192.0.2.9", "user@example.com", Action.REJECT),
    ("x@ok.test", "203.0.113.5", "user@example.com", Action.ACCEPT),
    ("x@spam.test", "203.0.113.5", "user@other.example", Action.QUARANTINE),
])
def test_it_agrees_with_the_rule_engine_on_system_rules(mail_from: str, ip: str, rcpt: str, expect: Action) -> None:
    s = snap()
    sieve_o = SievePolicyEngine(s).message(make_ctx(s, MSG, ip=ip, mail_from=mail_from, rcpts=(rcpt,)))
    rule_o = RulePolicyEngine(s).message(make_ctx(s, MSG, ip=ip, mail_from=mail_from, rcpts=(rcpt,)))
    assert sieve_o.action is rule_o.action is expect
    assert sieve_o.reply == rule_o.reply
    assert sieve_o.decided_by == rule_o.decided_by


def test_it_refuses_blocked_recipients_at_rcpt() -> None:
    s = snap()
    eng = SievePolicyEngine(s)
    ctx = make_ctx(s, b"", rcpts=("closed@example.com",))
    o = eng.recipient(ctx, ctx.recipients[0])
    assert o is not None and o.action is Action.REJECT
    assert o.decided_by == "system:lists:blocklist_recipient"
    ok = make_ctx(s, b"", rcpts=("open@example.com",))
    assert eng.recipient(ok, ok.recipients[0]) is None


def test_it_refuses_at_envelope_time_only_before_admin_scripts() -> None:
    s = snap()
    ctx = make_ctx(s, b"", mail_from="x@spam.test")
    o = SievePolicyEngine(s).envelope(ctx)
    assert o is not None and o.action is Action.REJECT
    exempt = snap(scripts=[{"name": "partner", "position": "before", "source":
                            'require "envelope"; if envelope :domain "from" "spam.test" { keep; stop; }'}])
    ctx = make_ctx(exempt, b"", mail_from="x@spam.test")
    assert SievePolicyEngine(exempt).envelope(ctx) is None
    final = SievePolicyEngine(exempt).message(make_ctx(exempt, MSG, mail_from="x@spam.test"))
    assert final.action is Action.ACCEPT and final.decided_by == "script:partner:1"


def test_it_maps_admin_actions_to_outcomes() -> None:
    cases = {
        'require "fileinto"; fileinto "Quarantine";': (Action.QUARANTINE, QuarantineQueue.USER),
        'require "vnd.bulwark"; quarantine :admin "held";': (Action.QUARANTINE, QuarantineQueue.ADMIN),
        'discard;': (Action.DISCARD, None),
        'require "reject"; reject "no thanks";': (Action.REJECT, None),
        'require "fileinto"; fileinto "Archive";': (Action.ACCEPT, None),
    }
    for src, (action, queue) in cases.items():
        s = snap(scripts=[{"name": "a", "source": src}])
        o = SievePolicyEngine(s).message(make_ctx(s, MSG))
        assert o.action is action, src
        if queue is not None:
            assert o.queue is queue
    s = snap(scripts=[{"name": "a", "source": 'require "reject"; reject "no thanks";'}])
    o = SievePolicyEngine(s).message(make_ctx(s, MSG))
    assert o.reply is not None and str(o.reply) == "550 5.7.1 no thanks"


def test_it_collects_header_edits_and_redirects_across_scripts() -> None:
    s = snap(scripts=[
        {"name": "tag", "source": 'require "editheader"; addheader "X-Tag" "one"; deleteheader "Subject";'},
        {"name": "copy", "source": 'require "copy"; redirect :copy "archive@example.com";'},
        {"name": "final", "source": 'keep;'},
        {"name": "never", "source": 'discard;'},
    ])
    o = SievePolicyEngine(s).message(make_ctx(s, MSG))
    assert o.action is Action.ACCEPT and o.decided_by == "script:final:1"
    assert [(e.op, e.name, e.value) for e in o.header_edits] == [("insert", "X-Tag", "one"), ("delete", "Subject", "")]
    assert o.add_recipients == ("archive@example.com",)


def test_it_orders_scripts_by_position() -> None:
    s = snap(scripts=[
        {"name": "late", "position": "after", "source": "discard;"},
        {"name": "early", "position": "before:lists", "source":
            'require "envelope"; if envelope :domain "from" "spam.test" { keep; }'},
    ])
    eng = SievePolicyEngine(s)
    names = [x["name"] for x in eng.scripts(None)]
    assert names.index("early") < names.index("system:lists") < names.index("late")
    assert eng.message(make_ctx(s, MSG, mail_from="x@spam.test")).decided_by == "script:early:1"
    assert eng.message(make_ctx(s, MSG)).action is Action.DISCARD


def test_it_applies_domain_scripts_only_to_their_domain() -> None:
    s = snap(scripts=[{"name": "dom", "domain": "other.example", "source": "discard;"}])
    eng = SievePolicyEngine(s)
    assert eng.message(make_ctx(s, MSG, rcpts=("u@other.example",))).action is Action.DISCARD
    assert eng.message(make_ctx(s, MSG, rcpts=("u@example.com",))).action is Action.ACCEPT


def test_it_tempfails_on_a_runtime_error_with_script_and_line() -> None:
    src = 'require ["variables", "regex"];\nset "x" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!";\n' \
          'if string :regex "${x}" "^(a|aa)+$" { discard; }'
    s = snap(scripts=[{"name": "slow", "source": src}])
    ctx = make_ctx(s, MSG)
    o = SievePolicyEngine(s).message(ctx)
    assert o.action is Action.TEMPFAIL
    assert o.decided_by == "script:slow:3" and "line 3" in o.reason
    assert any(t.event == "error" and t.source == "script:slow:3" for t in ctx.trace)
    lenient = snap(gateway={"hostname": "mx.example.com", "fail_mode": "accept"},
                   scripts=[{"name": "slow", "source": src}])
    assert SievePolicyEngine(lenient).message(make_ctx(lenient, MSG)).action is Action.ACCEPT


def test_it_refuses_invalid_scripts_at_import() -> None:
    with pytest.raises(SettingsError) as e:
        snap(scripts=[{"name": "bad", "source": 'if header :contains "Subject" "x" {\n  fileinto "X";\n}'}])
    assert "scripts[0].source" in str(e.value) and "2:3" in str(e.value) and "fileinto" in str(e.value)


def test_it_runs_layers_lazily_only_when_a_script_asks() -> None:
    s = snap(scripts=[{"name": "first", "position": "before", "source": "keep;"}])
    ctx = make_ctx(s, MSG, mail_from="x@spam.test")
    assert SievePolicyEngine(s).message(ctx).decided_by == "script:first:1"
    assert "lists" not in ctx.runner.computed()
    ctx = make_ctx(s, MSG, mail_from="x@spam.test")
    s2 = snap()
    ctx = make_ctx(s2, MSG, mail_from="x@spam.test")
    SievePolicyEngine(s2).message(ctx)
    assert "lists" in ctx.runner.computed()


def test_it_exposes_system_scripts_as_readable_sieve() -> None:
    eng = SievePolicyEngine(snap())
    src = next(x["source"] for x in eng.scripts(None) if x["name"] == "system:lists")
    assert 'bulwark_symbol :layer "lists" :is ["BLOCKLIST_SENDER"]' in src
    assert 'refuse :code "550" :status "5.7.1"' in src


def test_it_validates_scripts_even_when_only_the_snapshot_module_is_loaded() -> None:
    import subprocess
    import sys

    code = ("from gateway_milter.policy.snapshot import PolicySnapshot\n"
            "try:\n    PolicySnapshot.from_document({'scripts': [{'name': 'x', 'source': 'keep'}]})\n"
            "except Exception as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == ("scripts[0].source: 1:5: expected end of command ';' or the beginning of a block '{',"
                           " found end of script")


def test_it_compiles_every_plan_when_the_policy_loads() -> None:
    from gateway_milter.sieve import CompileError

    bad = snap(scripts=[{"name": "dom", "domain": "other.example", "source": 'require "include"; include "missing";'}])
    with pytest.raises(CompileError) as e:
        SievePolicyEngine(bad)
    assert "missing" in str(e.value)


def test_it_keeps_when_a_script_keeps_and_discards() -> None:
    s = snap(scripts=[{"name": "a", "source": "keep; discard;"}])
    assert SievePolicyEngine(s).message(make_ctx(s, MSG)).action is Action.ACCEPT
    s = snap(scripts=[{"name": "a", "source": 'require "fileinto"; keep; fileinto "Quarantine";'}])
    assert SievePolicyEngine(s).message(make_ctx(s, MSG)).action is Action.QUARANTINE


def test_it_reports_spamtest_from_the_message_score() -> None:
    # the total is the scoring layer's (with it off, spamtest is 0: not tested, RFC 5235)
    s = snap(settings={**only_layers("lists", "scoring"), "scoring": {"mode": "score", "layers": []}},
             scripts=[{"name": "spam", "source":
                       'require ["spamtest", "relational", "comparator-i;ascii-numeric"];'
                       ' if spamtest :value "ge" :comparator "i;ascii-numeric" "6" { discard; }'}])
    gtube = MSG + b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\n"
    assert SievePolicyEngine(s).message(make_ctx(s, gtube)).action is Action.DISCARD  # 1 + min(9, 1000) = 10
    assert SievePolicyEngine(s).message(make_ctx(s, MSG)).action is Action.ACCEPT  # 1 + int(0) = 1


def test_it_makes_reject_reasons_one_ascii_line() -> None:
    src = 'require "reject"; reject text:\nNon merci, café\nsecond line\n.\n;'
    s = snap(scripts=[{"name": "r", "source": src}])
    o = SievePolicyEngine(s).message(make_ctx(s, MSG))
    assert o.reply is not None and o.reply.text == "Non merci, caf? second line"


def test_it_lets_a_fail_closed_layer_failure_through() -> None:
    from gateway_milter.pipeline.runner import LayerFailure

    s = snap()
    ctx = make_ctx(s, MSG)
    assert ctx.runner is not None

    def broken(_ctx: object, layer_id: str) -> None:
        raise LayerFailure(layer_id, "clamd is down")

    ctx.runner.result = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(LayerFailure):
        SievePolicyEngine(s).message(ctx)
