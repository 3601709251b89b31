"""A meta rule's value is its expression's, as SpamAssassin keeps it: a count meta read by
another meta (``meta __N A + B + C`` then ``meta X __N >= 2``) gives the count, not 0 or 1.
The expected hits are what Debian's spamassassin 4.0.1 reported for these rules and this
message (tests/integration/antispam/test_sa_differential.py runs it again), on every path:
the C meta program, the generated Python and the reference path."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_milter.antispam import metavm
from gateway_milter.antispam.engine import RuleEngine
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.rules import RulesSettings, engine_from_settings
from tests.unit.antispam.helpers import make_ctx, msg, policy, write_rules

RULES = """
body __MA /aaa/
body __MB /bbb/
body __MC /ccc/
meta __CNT __MA + __MB + __MC
meta T_CNT2 __CNT >= 2
meta T_CNT3 __CNT == 3
meta T_CNT_GT1 __CNT > 1
meta __CNTX (__MA + __MB) * 2
meta T_CNTX4 __CNTX == 4
body __MULTI /aaa/
tflags __MULTI multiple
meta T_MULTI3 __MULTI >= 3
meta __MULTIM __MULTI
meta T_MULTIM3 __MULTIM >= 3
meta __HALF (__MA + __MB) / 4
meta T_HALF __HALF == 0.5
meta T_SUM5 (__CNT + __MA + __MB) >= 5
meta T_AND3 (__MB && __MULTI) == 3
meta T_NOT_CNT !__CNT
"""
SCORED = ["T_CNT2", "T_CNT3", "T_CNT_GT1", "T_CNTX4", "T_MULTI3", "T_MULTIM3", "T_HALF", "T_SUM5", "T_AND3", "T_NOT_CNT"]
RULES += "".join(f"score {n} 0.01\n" for n in SCORED)
MESSAGE = msg("hi", "aaa bbb ccc\r\naaa\r\naaa")
SPAMASSASSIN = set(SCORED) - {"T_NOT_CNT"}


def _engine(tmp_path: Path) -> RuleEngine:
    d = write_rules(tmp_path, RULES)
    return engine_from_settings(RulesSettings(include_default=False, rule_dirs=[str(d)]))


def _hits(tmp_path: Path) -> set[str]:
    d = write_rules(tmp_path, RULES)
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(d)]}})
    return {s.name for s in make_ctx(MESSAGE, pol).layer("rules").symbols}


def test_count_metas_read_by_metas_agree_with_spamassassin(tmp_path: Path) -> None:
    assert _hits(tmp_path) == SPAMASSASSIN


@pytest.mark.parametrize("native", [True, False])
def test_every_path_keeps_the_value(tmp_path: Path, native: bool) -> None:
    if native and not metavm.NATIVE:
        pytest.skip("the C module is not built (scripts/compiled.py build)")
    eng = _engine(tmp_path)
    eng.native_metas = native
    eng._compile_metas()
    view = message_view(make_ctx(MESSAGE))
    for lazy in (True, False):  # the planned run and the reference path (every rule, written order)
        values = eng.run(view, None, lazy=lazy).values
        assert {n for n in SCORED if values.get(n)} == SPAMASSASSIN, (native, lazy)
        if not lazy:
            assert values["__CNT"] == 3 and values["__CNTX"] == 4 and values["__HALF"] == 0.5
            assert values["__MULTIM"] == 3


def test_a_meta_of_truth_values_still_counts_as_one(tmp_path: Path) -> None:
    eng = _engine(tmp_path)
    # (bounded sums over such metas keep their short cut; over a count meta they cannot)
    assert eng._binary("T_CNT2") and eng._binary("T_NOT_CNT")
    assert not eng._binary("__CNT") and not eng._binary("__HALF") and not eng._binary("__MULTIM")
