"""A BATV-tagged recipient delivered to its plain address keeps the DSN parameters the client gave
at RCPT (RFC 3461 ``NOTIFY=``, ``ORCPT=``): the front deletes the tagged recipient and adds the
plain one with smfi_addrcpt_par. Before, the added recipient had none, so ``NOTIFY=NEVER`` or
``NOTIFY=SUCCESS,FAILURE`` the client asked for no longer applied. An MTA that offers no
ADDRCPT_PAR gets the plain recipient without them (a trace entry says so), not a 4xx."""

from __future__ import annotations

import copy

import Milter
import pytest
from Milter.testctx import TestCtx

from gateway_milter.layers.backscatter import sign
from gateway_milter.store.memory import MemoryStore
from tests.unit.spine.conftest import BASE_POLICY, ListSink, make_gateway
from tests.unit.spine.test_milter_front import NO_NR_OPTS, run

REPLY = b"From: Carol <carol@remote.test>\nTo: bob@example.com\nSubject: Re: hello\n\nThanks Bob.\n"


@pytest.fixture(autouse=True)
def _mta_without_noreply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestCtx, "default_opts", list(NO_NR_OPTS))


def _rcpt_params(monkeypatch: pytest.MonkeyPatch, params: dict[str, tuple[str, ...]]) -> None:
    """RCPT TO with ESMTP parameters, as libmilter passes them (TestCtx passes none)."""

    def envrcpt(self: TestCtx, s: str) -> int:
        self._stage = Milter.M_ENVRCPT
        rc: int = self._priv.envrcpt(s, *params.get(s.strip("<>"), ()))
        self._stage = None
        return rc

    monkeypatch.setattr(TestCtx, "_envrcpt", envrcpt)


def _gateway() -> tuple[object, ListSink]:
    doc = copy.deepcopy(BASE_POLICY)
    doc["settings"]["backscatter"] = {"mode": "on"}
    gw, _, sink = make_gateway(doc)
    return gw, sink


def test_it_carries_notify_and_orcpt_to_the_plain_recipient(store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    tagged = sign("bob@example.com", store)
    xtext = tagged.replace("=", "+3D")  # (RFC 3461's xtext)
    _rcpt_params(monkeypatch, {tagged: ("NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{xtext}", "X-OTHER=1"),
                               "dave@example.com": ("NOTIFY=NEVER",)})
    gw, _ = _gateway()
    ctx, rc = run(gw, "carol@remote.test", tagged, "dave@example.com", msg=REPLY)
    assert rc == Milter.ACCEPT
    assert ctx._delrcpt == [f"<{tagged}>"]
    # the client's ORCPT as given (the tagged address it wrote); nothing but the DSN parameters
    assert ctx._addrcpt == [("<bob@example.com>", f"NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;{xtext}")]


def test_it_carries_notify_never_alone_without_inventing_an_orcpt(store: MemoryStore,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tagged = sign("bob@example.com", store)
    _rcpt_params(monkeypatch, {tagged: ("notify=NEVER",)})
    gw, _ = _gateway()
    ctx, rc = run(gw, "carol@remote.test", tagged, msg=REPLY)
    assert rc == Milter.ACCEPT
    assert ctx._addrcpt == [("<bob@example.com>", "notify=NEVER")]


def test_a_tagged_recipient_without_parameters_is_added_plainly(store: MemoryStore) -> None:
    tagged = sign("bob@example.com", store)
    gw, _ = _gateway()
    ctx, rc = run(gw, "carol@remote.test", tagged, msg=REPLY)
    assert rc == Milter.ACCEPT
    assert ctx._addrcpt == [("<bob@example.com>", None)]


def test_an_mta_without_addrcpt_par_gets_the_plain_recipient_without_them(
        store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TestCtx, "default_opts", [NO_NR_OPTS[0] & ~Milter.ADDRCPT_PAR, *NO_NR_OPTS[1:]])
    tagged = sign("bob@example.com", store)
    _rcpt_params(monkeypatch, {tagged: ("NOTIFY=NEVER",)})
    gw, sink = _gateway()
    ctx, rc = run(gw, "carol@remote.test", tagged, msg=REPLY)
    assert rc == Milter.ACCEPT  # (not the 4xx of a failed smfi_addrcpt_par)
    assert ctx._delrcpt == [f"<{tagged}>"]
    assert ctx._addrcpt == [("<bob@example.com>", None)]
    [trace] = [t for t in sink.records[-1]["trace"] if t["source"] == "milter" and t["event"] == "addrcpt"]
    assert "bob@example.com added without NOTIFY=NEVER" in trace["detail"]


def test_a_redirect_target_gets_no_parameters_of_the_original(monkeypatch: pytest.MonkeyPatch) -> None:
    # only a recipient put in place of one the client gave carries its parameters
    _rcpt_params(monkeypatch, {"bob@example.com": ("NOTIFY=NEVER",)})
    doc = copy.deepcopy(BASE_POLICY)
    doc["scripts"] = [{"name": "archive", "position": "before",
                       "source": 'require ["copy"]; redirect :copy "archive@example.com";'}]
    gw, _, _ = make_gateway(doc)
    ctx, rc = run(gw, "alice@outside.test", "bob@example.com")
    assert rc == Milter.ACCEPT
    assert ctx._addrcpt == [("<archive@example.com>", None)]
