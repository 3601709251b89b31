"""Antivirus and MIME-check layers with an in-process INSTREAM server (the real clamd runs in
tests/integration/av): verdict mapping, failure handling, union scanning, policy rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.layers.antivirus import AntivirusLayer, AntivirusSettings
from gateway_milter.layers.base import SettingsError, settings_from_dict
from gateway_milter.layers.mimecheck import MimeCheckLayer, MimeCheckSettings
from gateway_milter.net.clamd import ClamdError
from gateway_milter.pipeline.runner import LayerFailure
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.verdict import Action, QuarantineQueue
from tests.services import EICAR
from tests.unit.av.mailbuild import (
    AMBIGUOUS,
    context,
    plain,
    with_attachment,
    zip_bytes,
)
from tests.unit.av.test_clamd_client import FakeClamd

AV = AntivirusLayer()


def verdict_of(data: bytes) -> str:
    if EICAR in data:
        return "stream: Eicar-Test-Signature FOUND"
    if b"ENCRYPTED" in data:
        return "stream: Heuristics.Encrypted.Zip FOUND"
    if b"TOO-BIG" in data:
        return "INSTREAM size limit exceeded. ERROR"
    return "stream: OK"


@pytest.fixture
def clamd(tmp_path: Path) -> Iterator[FakeClamd]:
    srv = FakeClamd(tmp_path / "clamd.sock", verdict_of)
    yield srv
    srv.close()


def scan(raw: bytes, srv: FakeClamd | None, **kw: Any) -> tuple[dict[str, Any], set[str]]:
    servers = [f"unix:{srv.path}"] if srv else [f"unix:/nonexistent/{id(kw)}.sock"]
    s = settings_from_dict(AntivirusSettings, {"servers": servers, **kw})
    ctx = context(raw)
    try:
        found = AV.check(ctx, s)
    finally:
        ctx.close()
    return found.facts, {x.name for x in found.symbols}


def test_it_reports_clean_mail(clamd: FakeClamd) -> None:
    facts, syms = scan(with_attachment(b"hello", "a.txt", "text/plain"), clamd)
    assert facts["verdict"] == "clean" and facts["virustest"] == 1 and syms == set()
    # the raw message and each decoded part are scanned
    assert facts["scanned_streams"] == 3 and len(clamd.received) == 3


def test_it_reports_the_signature_of_an_infected_part(clamd: FakeClamd) -> None:
    facts, syms = scan(with_attachment(EICAR, "e.com"), clamd)
    assert facts["verdict"] == "infected" and facts["signature"] == "Eicar-Test-Signature"
    assert facts["virustest"] == 5 and syms == {"CLAMAV_VIRUS"}


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_it_scans_every_interpretation(case: str, clamd: FakeClamd) -> None:
    facts, _ = scan(AMBIGUOUS[case], clamd)
    assert facts["verdict"] == "infected"


def test_it_finds_what_only_an_alternative_reading_shows(tmp_path: Path) -> None:
    # a scanner that cannot parse MIME (only sees decoded bytes) still finds the hidden part
    srv = FakeClamd(tmp_path / "s.sock", lambda d: "stream: E FOUND" if d == EICAR else "stream: OK")
    try:
        facts, _ = scan(AMBIGUOUS["duplicate_boundary"], srv)
        assert facts["verdict"] == "infected" and facts["infections"][0]["where"].startswith("alternative")
        facts, _ = scan(AMBIGUOUS["duplicate_boundary"], srv, scan_alternatives=False)
        assert facts["verdict"] == "clean"
    finally:
        srv.close()


def test_it_calls_encrypted_content_unscannable_not_clean(clamd: FakeClamd) -> None:
    facts, syms = scan(with_attachment(b"ENCRYPTED", "a.bin"), clamd)
    assert facts["verdict"] == "unscannable" and syms == {"CLAMAV_UNSCANNABLE"} and facts["virustest"] == 4


def test_it_calls_over_limit_content_unscannable(clamd: FakeClamd) -> None:
    facts, _ = scan(with_attachment(b"TOO-BIG", "a.bin"), clamd)
    assert facts["verdict"] == "unscannable"
    facts, _ = scan(with_attachment(b"x" * 5000, "a.bin"), clamd, max_stream_bytes=4096)
    assert facts["verdict"] == "unscannable" and "over the scan limit" in facts["unscannable_reasons"][0]


def test_it_calls_bombs_unscannable(clamd: FakeClamd) -> None:
    bomb = zip_bytes({"z": b"\0" * (4 * 1024 * 1024)})
    facts, _ = scan(with_attachment(bomb, "b.zip"), clamd)
    assert facts["verdict"] == "unscannable" and "limit:ratio" in facts["unscannable_reasons"][0]


def test_it_raises_when_clamd_is_down_so_the_message_is_tempfailed() -> None:
    with pytest.raises(ClamdError):
        scan(plain(), None)


def test_it_tempfails_through_the_runner_when_clamd_is_down(tmp_path: Path) -> None:
    snap = PolicySnapshot.from_document({"settings": {"antivirus": {"servers": [f"unix:{tmp_path}/none.sock"]}}})
    ctx = context(plain(), snap)
    with pytest.raises(LayerFailure):
        ctx.layer("antivirus")
    ctx.close()


def test_it_can_quarantine_on_scanner_error_instead() -> None:
    facts, syms = scan(plain(), None, error_action="quarantine")
    assert facts["verdict"] == "error" and syms == {"CLAMAV_ERROR"}
    rules = {r.name: r for r in AV.policy_rules(AntivirusSettings(error_action="quarantine"))}
    assert rules["scanner_error"].outcome.queue is QuarantineQueue.ADMIN


def test_it_maps_settings_to_policy_rules() -> None:
    rules = {r.name: r.outcome for r in AV.policy_rules(AntivirusSettings())}
    assert rules["virus"].action is Action.REJECT and rules["virus"].reply and rules["virus"].reply.code == "554"
    assert rules["unscannable"].action is Action.QUARANTINE and rules["unscannable"].queue is QuarantineQueue.ADMIN
    assert "scanner_error" not in rules
    rules = {r.name: r.outcome for r in AV.policy_rules(AntivirusSettings(infected_action="quarantine",
                                                                        unscannable_action="tempfail"))}
    assert rules["virus"].queue is QuarantineQueue.ADMIN and rules["unscannable"].action is Action.TEMPFAIL


@pytest.mark.parametrize("bad", [{"infected_action": "accept"}, {"unscannable_action": "accept"},
                                 {"servers": ["tcp:nohost"]}, {"timeout_s": 0}, {"error_action": "accept"}])
def test_it_rejects_settings_that_could_pass_a_virus(bad: dict[str, Any]) -> None:
    with pytest.raises(SettingsError):
        settings_from_dict(AntivirusSettings, bad)


# -- mime layer ------------------------------------------------------------------------------------
MIME = MimeCheckLayer()


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_it_names_each_ambiguity_as_a_symbol(case: str) -> None:
    ctx = context(AMBIGUOUS[case])
    found = MIME.check(ctx, MimeCheckSettings())
    ctx.close()
    names = {s.name for s in found.symbols}
    assert "MIME_AMBIGUOUS" in names and found.facts["ambiguous"]
    assert sum(s.score for s in found.symbols) > 0


def test_it_is_quiet_on_clean_mail() -> None:
    ctx = context(with_attachment(b"data", "a.txt", "text/plain"))
    found = MIME.check(ctx, MimeCheckSettings())
    ctx.close()
    assert found.symbols == () and found.facts["parts"] == 2


def test_it_offers_refuse_and_quarantine_for_ambiguous_mail() -> None:
    assert MIME.policy_rules(MimeCheckSettings()) == []
    (r,) = MIME.policy_rules(MimeCheckSettings(ambiguous_action="refuse"))
    assert r.outcome.action is Action.REJECT and r.symbols == ("MIME_AMBIGUOUS",)
    (r,) = MIME.policy_rules(MimeCheckSettings(ambiguous_action="quarantine"))
    assert r.outcome.queue is QuarantineQueue.ADMIN
    with pytest.raises(SettingsError):
        settings_from_dict(MimeCheckSettings, {"scores": {"NOT_A_CODE": 1.0}})
    s = settings_from_dict(MimeCheckSettings, {"scores": {"HIDDEN_PART": 9.0}})
    ctx = context(AMBIGUOUS["hidden_in_text"])
    found = MIME.check(ctx, s)
    ctx.close()
    assert next(x.score for x in found.symbols if x.name == "MIME_HIDDEN_PART") == 9.0


def test_it_scans_the_parts_of_a_message_too_big_for_one_stream(clamd: FakeClamd) -> None:
    raw = with_attachment(b"x" * 3000, "a.bin") + b"\r\n" + b"y" * 3000
    facts, _ = scan(raw, clamd, max_stream_bytes=4096)
    assert facts["verdict"] == "clean" and facts["raw_skipped"] and facts["scanned_streams"] == 2
    facts, _ = scan(with_attachment(EICAR + b"z" * 3000, "a.bin") + b"y" * 3000, clamd, max_stream_bytes=4096)
    assert facts["verdict"] == "infected"
    facts, _ = scan(AMBIGUOUS["duplicate_boundary"] + b"q" * 5000, clamd, max_stream_bytes=4096)
    assert facts["verdict"] == "infected"  # found in an alternative reading


def test_it_takes_servers_from_gateway_clamd(monkeypatch: pytest.MonkeyPatch, clamd: FakeClamd) -> None:
    from gateway_milter.net.clamd import configured_servers

    monkeypatch.setenv("GATEWAY_CLAMD", f"tcp:127.0.0.1:1,unix:{clamd.path}")
    assert configured_servers() == ["tcp:127.0.0.1:1", f"unix:{clamd.path}"]
    ctx = context(with_attachment(EICAR, "e.com"))
    found = AV.check(ctx, AntivirusSettings())
    ctx.close()
    assert found.facts["verdict"] == "infected" and found.facts["server"] == f"unix:{clamd.path}"
    monkeypatch.setenv("GATEWAY_CLAMD", "bogus")
    with pytest.raises(ValueError, match="GATEWAY_CLAMD"):
        configured_servers()


def test_it_gives_the_rfc5235_virustest_value(clamd: FakeClamd) -> None:
    from gateway_milter.layers.antivirus import virustest_value
    from gateway_milter.pipeline.runner import LayerResult

    values = {}
    for name, raw in (("clean", plain()), ("infected", with_attachment(EICAR, "e.com")),
                      ("unscannable", with_attachment(b"ENCRYPTED", "x.bin"))):
        facts, _ = scan(raw, clamd)
        values[name] = virustest_value(LayerResult("antivirus", facts))
    assert values == {"clean": "1", "infected": "5", "unscannable": "4"}
    assert virustest_value(LayerResult("antivirus", skipped="disabled")) == "0"
