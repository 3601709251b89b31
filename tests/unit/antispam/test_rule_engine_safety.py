"""What a local rule can do to the engine: nothing it writes may stop a message (an exception
per message) or hold the process (an expression that runs super-linear), and rules whose hits
count (tflags multiple) count on every path."""

from __future__ import annotations

from pathlib import Path

from gateway_milter.antispam.engine import RuleEngine
from gateway_milter.antispam.sarules import load_rules
from gateway_milter.antispam.saview import message_view
from tests.unit.antispam.helpers import make_ctx, msg, write_rules


def _engine(tmp_path: Path, rules: str) -> RuleEngine:
    return RuleEngine(load_rules([write_rules(tmp_path, rules)]))


def test_an_eval_argument_regex_that_does_not_compile_is_listed_at_load(tmp_path: Path) -> None:
    eng = _engine(tmp_path, "freemail_domains sender.test\n"
                            "header LOCAL_F eval:check_freemail_from('(unclosed')\nscore LOCAL_F 1\n"
                            "header LOCAL_H eval:check_freemail_header('From', 'x[')\nscore LOCAL_H 1\n"
                            "header LOCAL_OK eval:check_freemail_header('From', '^alice@')\nscore LOCAL_OK 1\n")
    assert "LOCAL_F" in eng.unsupported and "does not compile" in eng.unsupported["LOCAL_F"]
    assert "LOCAL_H" in eng.unsupported
    # the message the rules would have deferred runs, and a good expression still hits
    hits = {h.name for h in eng.run(message_view(make_ctx(msg()))).hits}
    assert hits == {"LOCAL_OK"}
