"""Suite-wide setup: every tier runs against the backend chosen by the environment (SQLite and
the embedded store by default; PostgreSQL + Redis when GATEWAY_DATABASE_URL/GATEWAY_REDIS_URL
are set by scripts/with-services.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# One cache of compiled Hyperscan rule databases for the whole run, milters started by the
# integration tier included (they inherit the environment), and for every run on this machine
# (a database's file is named after a hash of its rules and of Hyperscan's version): built once,
# in the background, by the first process that needs it (gateway_milter/antispam/hsmatch.py).
os.environ.setdefault("GATEWAY_RULES_CACHE_DIR", str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bulwark" / "rules-cache"))


@pytest.fixture(autouse=True, scope="session")
def _celery_eager_in_tests() -> None:
    # Tests call tasks synchronously; the worker itself is exercised by the integration tier.
    from config.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True, scope="session")
def _static_root() -> None:
    # collectstatic's directory, which the run command fills: without it the static files'
    # middleware warns on every request (the tests' pages are served through the finders)
    from django.conf import settings

    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def _autolearn_written() -> Iterator[None]:
    # autolearn learns in a background thread (gateway_milter/antispam/learner.py): a test's
    # queued messages are written before the next test starts, never into its store
    yield
    from gateway_milter.antispam.learner import learner

    learner().flush(timeout=10.0)


def _test_ctx_with_leading_space() -> None:
    """pymilter's TestCtx offers SMFIP_HDR_LEADSPC but does not honour it: with it negotiated,
    an MTA passes a header's value with the white space after the colon and writes ours as
    given. TestCtx's message parser has taken that space off already, so it is put back (the
    tests' messages write one) and the one the milter puts before its own values is taken off,
    as Postfix and Sendmail do."""
    import Milter
    from Milter.testctx import TestCtx

    if getattr(TestCtx, "_bulwark_leadspc", False):
        return
    header, addheader, chgheader = TestCtx._header, TestCtx.addheader, TestCtx.chgheader

    def _header(self: TestCtx, fld: str, val: object) -> int:
        if self._protocol & Milter.P_HDR_LEADSPC:
            priv = self._priv
            sent = priv.header_bytes

            def with_space(f: str, v: bytes) -> int:
                return sent(f, b" " + v)  # type: ignore[no-any-return]

            priv.header_bytes = with_space
            try:
                return header(self, fld, val)  # type: ignore[no-any-return]
            finally:
                del priv.header_bytes
        return header(self, fld, val)  # type: ignore[no-any-return]

    def _written(self: TestCtx, value: str) -> str:
        return value[1:] if self._protocol & Milter.P_HDR_LEADSPC and value.startswith(" ") else value

    TestCtx._header = _header
    TestCtx.addheader = lambda self, field, value, idx: addheader(self, field, _written(self, value), idx)
    TestCtx.chgheader = lambda self, field, idx, value: chgheader(self, field, idx, _written(self, value))
    TestCtx._bulwark_leadspc = True


_test_ctx_with_leading_space()
