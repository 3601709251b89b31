"""Antivirus against a REAL clamd on loopback (tests.services.clamd_server) with the test
signature databases of ../shared/corpus/av (the samples there are base64 so that no scanner
flags the repository; they are decoded here, in memory)."""

from __future__ import annotations

import base64
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_milter.layers.antivirus import AntivirusLayer, AntivirusSettings
from gateway_milter.layers.base import settings_from_dict
from gateway_milter.layers.mimecheck import MimeCheckLayer, MimeCheckSettings
from gateway_milter.net.clamd import ClamdClient, status
from gateway_milter.pipeline.runner import LayerFailure
from gateway_milter.policy.snapshot import PolicySnapshot
from tests.services import EICAR, clamd_server, shared_path
from tests.unit.av.mailbuild import (
    AMBIGUOUS,
    HEAD,
    context,
    plain,
    with_attachment,
    zip_bytes,
)

pytestmark = pytest.mark.integration

CORPUS = shared_path("corpus", "av")
LAYER = AntivirusLayer()
# RAR: Debian main ships clamd without libclamunrar (non-free), so clamd answers OK for any RAR.
# Our archive walker marks RAR "unsupported", so the verdict is unscannable, never clean.
UNSCANNABLE_BY_DESIGN = {"clam-v2.rar", "clam-v3.rar"}


def corpus(*parts: str) -> Path:
    p = CORPUS.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"../shared/corpus/av/{'/'.join(parts)} not present")
    return p


def decoded(name: str) -> bytes:
    return base64.b64decode(corpus(name).read_bytes())


@pytest.fixture(scope="module")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not CORPUS.exists():
        pytest.skip("../shared/corpus/av not present")
    extra = {p.name: p.read_text() for p in sorted(CORPUS.glob("*.[hn]db"))}
    with clamd_server(tmp_path_factory.mktemp("clamd"), extra) as srv:
        yield srv


def settings(srv: dict[str, Any], **kw: Any) -> AntivirusSettings:
    servers = kw.pop("servers", [f"tcp:127.0.0.1:{srv['port']}"])
    return settings_from_dict(AntivirusSettings, {"servers": servers, **kw})


def scan(raw: bytes, s: AntivirusSettings) -> dict[str, Any]:
    ctx = context(raw)
    try:
        return dict(LAYER.check(ctx, s).facts)
    finally:
        ctx.close()


def is_eicar(sig: str) -> bool:
    return "eicar" in sig.lower()


def test_it_reports_engine_version_and_db_for_the_dashboard(clamd: dict[str, Any]) -> None:
    c = ClamdClient([f"unix:{clamd['socket']}", f"tcp:127.0.0.1:{clamd['port']}"])
    v = c.version()
    assert v.engine.startswith("ClamAV ")
    st = status(c)
    assert st["up"] == 2
    # only local .hdb/.ndb files are loaded here: no daily.cvd, so no DB version or age
    assert all(row["db_version"] is None for row in st["servers"])  # type: ignore[attr-defined]


def test_it_finds_plain_eicar_over_tcp_and_unix(clamd: dict[str, Any]) -> None:
    data = decoded("eicar.com.b64")
    assert data == EICAR
    for server in (f"tcp:127.0.0.1:{clamd['port']}", f"unix:{clamd['socket']}"):
        r = ClamdClient([server]).scan(data)
        assert r.status == "infected" and is_eicar(r.signature) and r.server == server


@pytest.mark.parametrize("name,how", [
    ("eicar.zip.b64", "attachment"),
    ("eicar_in_zip_in_zip.zip.b64", "attachment"),
    ("eicar.com.b64", "attachment"),
    ("eicar_attachment.eml.b64", "message"),
    ("eicar_zip_attachment.eml.b64", "message"),
    ("eicar_inline_body.eml.b64", "message"),
])
def test_it_finds_eicar_in_every_wrapping(clamd: dict[str, Any], name: str, how: str) -> None:
    data = decoded(name)
    raw = with_attachment(data, name[:-4]) if how == "attachment" else data
    facts = scan(raw, settings(clamd))
    assert facts["verdict"] == "infected" and is_eicar(facts["signature"]), facts
    assert facts["virustest"] == 5


def test_it_finds_eicar_inline_in_a_text_body(clamd: dict[str, Any]) -> None:
    facts = scan(plain(b"Look: " + EICAR + b"\r\n"), settings(clamd))
    assert facts["verdict"] == "infected"


def _testfiles() -> list[str]:
    d = CORPUS / "clamav-testfiles"
    return sorted(p.name[:-4] for p in d.glob("*.b64")) if d.exists() else ["(absent)"]


@pytest.mark.parametrize("name", _testfiles())
def test_it_handles_every_clamav_testfile(clamd: dict[str, Any], name: str) -> None:
    data = base64.b64decode(corpus("clamav-testfiles", name + ".b64").read_bytes())
    facts = scan(with_attachment(data, name), settings(clamd))
    if name in UNSCANNABLE_BY_DESIGN:
        assert facts["verdict"] == "unscannable" and "unsupported:rar" in " ".join(facts["unscannable_reasons"])
    else:
        assert facts["verdict"] == "infected", facts
        assert facts["signature"].startswith(("Test.ClamExe", "ClamAV-Test-File")), facts


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_it_detects_eicar_behind_every_mime_ambiguity(clamd: dict[str, Any], case: str) -> None:
    raw = AMBIGUOUS[case]
    facts = scan(raw, settings(clamd))
    assert facts["verdict"] == "infected" and is_eicar(facts["signature"]), facts
    ctx = context(raw)
    mime = MimeCheckLayer().check(ctx, MimeCheckSettings())
    ctx.close()
    assert any(s.name == "MIME_AMBIGUOUS" for s in mime.symbols)


def test_it_reports_clean_mail_as_clean(clamd: dict[str, Any]) -> None:
    facts = scan(with_attachment(b"%PDF-1.4\nharmless\n", "a.pdf", "application/pdf"), settings(clamd))
    assert facts["verdict"] == "clean" and facts["virustest"] == 1 and facts["scanned_streams"] == 3


def test_it_fails_over_from_a_dead_server(clamd: dict[str, Any], tmp_path: Path) -> None:
    s = settings(clamd, servers=[f"unix:{tmp_path}/dead.sock", f"unix:{clamd['socket']}"])
    facts = scan(with_attachment(EICAR, "e.com"), s)
    assert facts["verdict"] == "infected" and facts["server"] == f"unix:{clamd['socket']}"


def test_it_calls_an_encrypted_zip_unscannable(clamd: dict[str, Any]) -> None:
    # zipfile cannot encrypt: set the encryption flag on a stored member (clamd then reports
    # Heuristics.Encrypted.Zip with AlertEncrypted, and our walker sees the flag too)
    data = bytearray(zip_bytes({"secret.bin": b"x" * 100}, zipfile.ZIP_STORED))
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        data[data.find(sig) + off] |= 1
    facts = scan(with_attachment(bytes(data), "secret.zip"), settings(clamd))
    assert facts["verdict"] == "unscannable", facts


def test_it_calls_content_over_streammaxlength_unscannable(clamd: dict[str, Any]) -> None:
    big = HEAD + b"Content-Type: text/plain\r\n\r\n" + b"A" * (26 * 1024 * 1024)
    facts = scan(big, settings(clamd, max_stream_bytes=64 * 1024 * 1024, scan_parts=False))
    assert facts["verdict"] == "unscannable" and "size limit" in facts["unscannable_reasons"][0]


@pytest.mark.parametrize("bomb", ["ratio", "depth", "entries"])
def test_it_finishes_bombs_in_time_as_unscannable(clamd: dict[str, Any], bomb: str) -> None:
    if bomb == "ratio":
        data = zip_bytes({"zeros.bin": b"\0" * (64 * 1024 * 1024)})
    elif bomb == "depth":
        data = EICAR.replace(b"EICAR", b"NOTEICAR")
        for i in range(30):
            data = zip_bytes({f"layer{i}.zip": data})
    else:
        data = zip_bytes({f"m{i:05}.txt": b"x" for i in range(10_000)}, zipfile.ZIP_STORED)
    s = settings(clamd)
    t0 = time.monotonic()
    facts = scan(with_attachment(data, f"{bomb}.zip"), s)
    took = time.monotonic() - t0
    assert facts["verdict"] == "unscannable", facts
    assert took < s.archive_time_s + 5, f"{bomb} bomb took {took:.1f}s"


def test_it_tempfails_when_clamd_stops_mid_run(tmp_path: Path) -> None:
    with clamd_server(tmp_path / "clamd") as srv:
        servers = [f"unix:{srv['socket']}", f"tcp:127.0.0.1:{srv['port']}"]
        snap = PolicySnapshot.from_document({"settings": {"antivirus": {"servers": servers, "timeout_s": 5}}})
        ctx = context(with_attachment(b"hello", "a.txt", "text/plain"), snap)
        assert ctx.layer("antivirus").facts["verdict"] == "clean"
        ctx.close()
        srv["proc"].terminate()
        srv["proc"].wait(10)
        ctx = context(with_attachment(EICAR, "e.com"), snap)
        with pytest.raises(LayerFailure) as err:
            ctx.layer("antivirus")
        ctx.close()
        assert "no clamd answered" in err.value.error
