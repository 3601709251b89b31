"""Parser, compiler and interpreter behaviour of our own (RFC 5228 and extensions)."""

from __future__ import annotations

import pytest

from gateway_milter.policy import snapshot
from gateway_milter.sieve import (
    CompileError,
    Limits,
    MessageData,
    compile_script,
    validate,
)
from gateway_milter.sieve.grammar import SieveError, parse
from tests.unit.sieve.helpers import kinds, run

MSG = b"From: Alice <alice@sender.test>\nTo: bob+news@example.com\nSubject: Cheap =?utf-8?q?caf=C3=A9?=\n\nHello\n"


def test_it_reports_syntax_errors_with_line_and_column() -> None:
    with pytest.raises(SieveError) as e:
        parse('if true {\n  keep;\n  discard\n}\n')
    assert (e.value.line, e.value.column) == (4, 1)
    errs = validate('require "fileinto";\nfileinto "A";\nfrobnicate;\nfrobnicate;\nif header :bogus "a" "b" { }')
    assert [(x["line"], x["column"]) for x in errs] == [(3, 1), (5, 11)]  # unknown names reported once
    assert "unknown tagged argument ':bogus'" in errs[1]["message"]


def test_it_refuses_unrequired_and_unknown_extensions() -> None:
    assert "requires the \"fileinto\" extension" in validate('fileinto "A";')[0]["message"]
    assert validate('require "x-made-up";')[0]["message"] == 'unknown extension "x-made-up"'
    assert "must come before" in validate('keep;\nrequire "fileinto";')[0]["message"]


def test_it_registers_the_policy_import_validator() -> None:
    assert snapshot.script_validator is not None
    assert snapshot.script_validator("keep;") is None
    assert snapshot.script_validator("keep").startswith("1:5: ")


def test_it_keeps_implicitly_unless_an_action_cancels_it() -> None:
    assert run("if false { discard; }").implicit_keep
    r = run('require ["fileinto", "copy"]; fileinto :copy "A";')
    assert r.implicit_keep and kinds(r) == ["fileinto"]
    r = run('require "fileinto"; fileinto "A"; fileinto "A"; keep; keep;')
    assert not r.implicit_keep and kinds(r) == ["fileinto", "keep"]  # duplicates merged (RFC 5228 2.10.3)


def test_it_fails_reject_with_a_delivery_and_then_keeps() -> None:
    r = run('require "reject"; redirect "a@example.org"; reject "no";')
    assert r.error is not None and "conflicts" in r.error.message and r.error.line == 1
    assert r.actions == [] and r.implicit_keep


def test_it_matches_headers_decoded_and_case_insensitively() -> None:
    r = run('if header :contains "subject" "CAFÉ" { discard; }', MSG)
    assert kinds(r) == []  # i;ascii-casemap folds ASCII only: É is not é
    r = run('if header :contains "subject" "cheap café" { discard; }', MSG)
    assert kinds(r) == ["discard"]
    r = run('require "comparator-i;unicode-casemap"; '
            'if header :contains :comparator "i;unicode-casemap" "subject" "CAFÉ" { discard; }', MSG)
    assert kinds(r) == ["discard"]


def test_it_sets_match_variables_non_greedily() -> None:
    r = run('require ["variables", "fileinto"]; if header :matches "subject" "*e*" { fileinto "${1}|${2}"; }', MSG)
    assert r.actions[0].args["mailbox"] == "Ch|ap café"


def test_it_extracts_address_parts_and_subaddresses() -> None:
    src = ('require ["subaddress", "fileinto"]; if address :detail "to" "news" { fileinto "N"; }'
           ' if address :user "to" "bob" { fileinto "U"; } if address :domain "from" "sender.test" { fileinto "D"; }')
    assert [a.args["mailbox"] for a in run(src, MSG).actions] == ["N", "U", "D"]


def test_it_compares_numerically_with_ascii_numeric() -> None:
    src = ('require ["relational", "comparator-i;ascii-numeric"]; '
           'if header :value "gt" :comparator "i;ascii-numeric" "x-score" "9" { discard; }')
    assert kinds(run(src, b"X-Score: 10\n\nx\n")) == ["discard"]
    assert kinds(run(src, b"X-Score: 9\n\nx\n")) == []


def test_it_edits_headers_visibly_to_later_tests() -> None:
    r = run('require "editheader"; addheader "X-Tag" "1"; if exists "x-tag" { deleteheader "subject"; }'
            ' if not exists "subject" { discard; }', MSG)
    assert kinds(r) == ["addheader", "deleteheader", "discard"]
    assert r.headers[0] == ("X-Tag", "1") and all(n != "Subject" for n, _ in r.headers)


def test_it_never_deletes_received_headers() -> None:
    r = run('require "editheader"; deleteheader "received";', b"Received: from x\nSubject: a\n\nb\n")
    assert r.headers[0][0] == "Received" and kinds(r) == []


def test_it_limits_redirects_actions_and_header_edits() -> None:
    redirects = " ".join(f'redirect "u{i}@example.org";' for i in range(5))
    assert "too many redirect" in run(redirects).error.message  # type: ignore[union-attr]
    prog = compile_script('require ["editheader", "variables"]; set "i" "x";'
                          + " ".join(f'addheader "X-{i}" "v";' for i in range(10)))
    res = prog.execute(MessageData.from_bytes(MSG), limits=Limits(max_header_edits=5))
    assert res.error is not None and "too many header edits" in res.error.message


def test_it_stops_catastrophic_regular_expressions() -> None:
    src = ('require ["regex", "variables"]; set "s" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!";'
           ' if string :regex "${s}" "^(a|aa)+$" { discard; }')
    r = run(src)
    assert r.error is not None and "regular expression too expensive" in r.error.message


def test_it_iterates_mime_parts_and_extracts_text() -> None:
    msg = (b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nfirst part\n"
           b"--b\nContent-Type: application/pdf; name=x.pdf\n\nPDF\n--b--\n")
    src = ('require ["foreverypart", "mime", "extracttext", "variables", "fileinto"];'
           ' foreverypart { if header :mime :type "content-type" "text" { extracttext :first 5 "t"; fileinto "${t}"; }'
           ' if header :mime :param "name" :matches "content-type" "*.pdf" { fileinto "pdf"; } }')
    assert [a.args["mailbox"] for a in run(src, msg).actions] == ["first", "pdf"]


def test_it_includes_scripts_with_globals_and_detects_cycles() -> None:
    lib = {"lib": 'require ["include", "variables"]; global "tag"; set "tag" "from-lib";'}
    prog = compile_script('require ["include", "variables", "fileinto"]; global "tag"; include "lib"; fileinto "${tag}";',
                          loader=lambda n, loc: lib.get(n))
    assert prog.execute(MessageData.from_bytes(MSG)).actions[0].args["mailbox"] == "from-lib"
    loop = {"a": 'require "include"; include "b";', "b": 'require "include"; include "a";'}
    with pytest.raises(CompileError) as e:
        compile_script('require "include"; include "a";', loader=lambda n, loc: loop.get(n))
    assert any("circular include" in x.message for x in e.value.errors)


def test_it_skips_blocks_guarded_by_unknown_capabilities() -> None:
    r = run('require "ihave"; if ihave "x-unknown" { frobnicate; } else { discard; }')
    assert kinds(r) == ["discard"]


def test_it_reads_the_envelope_including_the_null_sender() -> None:
    src = 'require "envelope"; if envelope :domain :is "from" "" { discard; }'
    assert kinds(run(src, MSG, mail_from="")) == ["discard"]
    assert kinds(run(src, MSG, mail_from="x@y.test")) == []


def test_it_stops_a_script_past_its_time_budget() -> None:
    prog = compile_script('if true { keep; }')
    res = prog.execute(MessageData.from_bytes(MSG), limits=Limits(cpu_seconds=-1.0))
    assert res.error is not None and "time limit" in res.error.message


def test_it_matches_wildcards_without_backtracking_blowup() -> None:
    import time

    msg = b"Subject: " + b"a" * 5000 + b"\n\nx\n"
    t0 = time.perf_counter()
    r = run('if header :matches "subject" "*a*a*a*a*a*a*a*a*b" { discard; }', msg)
    assert kinds(r) == [] and time.perf_counter() - t0 < 2.0  # backtracking would take minutes
    r = run('if header :matches "subject" "*a*a*a*a*a*a*a*a*" { discard; }', msg)
    assert kinds(r) == ["discard"]


def test_it_compiles_every_example_in_the_documentation() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs/policy/sieve.md").read_text()
    blocks = re.findall(r"```sieve\n(.*?)```", doc, re.S)
    assert len(blocks) >= 2
    for b in blocks:
        assert validate(b) == [], b


def test_it_refuses_oversized_and_too_deeply_nested_scripts() -> None:
    assert "larger than" in validate("keep;" + " " * (1 << 20))[0]["message"]
    deep = "if " + "not " * 100 + "true { keep; }"
    assert "nested too deeply" in validate(deep)[0]["message"]
