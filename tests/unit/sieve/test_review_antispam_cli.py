"""``sieve test`` with a virustest (or a vnd.bulwark test) whose fail-closed layer fails: the
milter answers 451 for such a message; the command must report the failure as a run-time
error (exit 1, ``error: ...``), not end with a Python traceback."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.sieve import cli


def _down(self: Any, ctx: Any, settings: Any) -> Any:
    from gateway_milter.net.clamd import ClamdError

    raise ClamdError("INSTREAM: no clamd answered")


@pytest.mark.parametrize("as_json", [False, True])
def test_it_reports_a_failed_antivirus_layer_as_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       as_json: bool) -> None:
    from gateway_milter.layers.antivirus import AntivirusLayer

    monkeypatch.setattr(AntivirusLayer, "check", _down)
    s, m = tmp_path / "s.sieve", tmp_path / "m.eml"
    s.write_text('require ["virustest", "relational", "comparator-i;ascii-numeric"];\n'
                 'if virustest :value "eq" :comparator "i;ascii-numeric" "5" { discard; }\n')
    m.write_bytes(b"From: a@x.test\nSubject: s\n\nbody\n")
    out = io.StringIO()
    assert cli.test(str(s), str(m), out, as_json=as_json) == 1
    if as_json:
        doc = json.loads(out.getvalue())
        assert doc["actions"] == [] and "antivirus" in doc["error"] and "clamd" in doc["error"]
    else:
        last = out.getvalue().splitlines()[-1]
        assert last.startswith("error: ") and "layer antivirus failed" in last
