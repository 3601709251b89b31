"""Helpers for the anti-spam unit tests: contexts built from raw messages, a fresh in-memory
state store per test, small rule files written on the fly."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from gateway_milter.context import ConnectionInfo, MessageContext, Recipient
from gateway_milter.pipeline.rawmessage import split_message
from gateway_milter.pipeline.runner import LayerRunner
from gateway_milter.policy.snapshot import PolicySnapshot
from gateway_milter.store import set_default_store
from gateway_milter.store.memory import MemoryStore
from gateway_milter.verdict import Direction, Stage


class Clock:
    """A clock a test moves by hand (``t``), given to stores, greylisting and caches in place of
    the time of day."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def store() -> Iterator[MemoryStore]:
    s = MemoryStore()
    set_default_store(s)
    yield s
    set_default_store(None)


def policy(settings: dict[str, Any] | None = None, domains: list[Any] | None = None,
           trusted: list[str] | None = None) -> PolicySnapshot:
    return PolicySnapshot.from_document({"settings": settings or {}, "domains": domains or ["example.com"],
                                         "trusted_networks": trusted or []})


def make_ctx(raw: bytes, pol: PolicySnapshot | None = None, *, ip: str = "203.0.113.7", mail_from: str = "a@sender.test",
             rcpts: tuple[str, ...] = ("bob@example.com",), scan_mode: bool = False, auth: str = "",
             direction: Direction = Direction.INBOUND, stage: Stage = Stage.EOM) -> MessageContext:
    pol = pol or policy()
    conn = ConnectionInfo(client_ip=ip, client_name="unknown", helo="mx.sender.test")
    if auth:
        conn.macros["{auth_authen}"] = auth
    ctx = MessageContext(conn, pol, scan_mode=scan_mode)
    headers, body = split_message(raw, verbatim=True)
    for n, v in headers:
        ctx.add_raw_header(n, v)  # (as the milter reads them: SMFIP_HDR_LEADSPC)
    ctx.body.write(body)
    ctx.mail_from = mail_from
    for r in rcpts:
        dom = r.rpartition("@")[2].lower()
        ctx.recipients.append(Recipient(r, dom, pol.is_local_domain(dom)))
    ctx.direction = direction
    ctx.policy_domain = pol.canonical_domain(rcpts[0].rpartition("@")[2]) if rcpts else None
    ctx.runner = LayerRunner()
    ctx.runner.enter_stage(stage)
    return ctx


def hashes(st: MemoryStore) -> dict[str, tuple[list[tuple[str, int]], float | None]]:
    """A memory store's counter hashes, comparable (each a CounterTable, which has no ``==``)."""
    return {k: (sorted(h.items()), exp) for k, (h, exp) in st._h.items()}


def hashes_as_read(st: MemoryStore) -> dict[str, tuple[list[tuple[str, float]], float | None]]:
    """``hashes`` with each token-model weight as it reads (``weight_of``): a batch's message
    that writes a weight the batch found empty adds W_MOD again, in case the one before it is
    not made (another learner wrote that message meanwhile), so raw values may differ by W_MODs."""
    from gateway_milter.antispam.bayes import weight_of

    return {k: ([(f, weight_of(v) if k.startswith("bayes2w:") and not f.startswith("#") else v) for f, v in h], exp)
            for k, (h, exp) in hashes(st).items()}


def msg(subject: str = "Hello", body: str = "Hi there, see you tomorrow.", headers: str = "",
        ctype: str = "text/plain; charset=utf-8") -> bytes:
    return (f"From: Alice <alice@sender.test>\r\nTo: bob@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash((subject, body)))}@sender.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: {ctype}\r\n{headers}\r\n{body}\r\n").encode()


def write_rules(tmp: Path, text: str, name: str = "local.cf") -> Path:
    d = tmp / "rules"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text)
    return d


def assert_rule_hits(tmp: Path, rules: str, scored: Iterable[str],
                     messages: Mapping[str, tuple[bytes, set[str]]]) -> None:
    """Each message's hits among ``scored``, by ``rules`` alone, are the ones it expects (the
    SpamAssassin-agreement modules' MESSAGES: name -> (raw, expected hits))."""
    pol = policy({"rules": {"include_default": False, "rule_dirs": [str(write_rules(tmp, rules))]}})
    for name, (raw, expected) in messages.items():
        assert {s.name for s in make_ctx(raw, pol).layer("rules").symbols} & set(scored) == expected, name


def bench_module(name: str = "antispam_cpu") -> ModuleType:
    """bench/<name>.py loaded as a module (bench/ is no package), fresh for each caller."""
    path = Path(__file__).resolve().parents[3] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
