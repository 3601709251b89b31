"""The message log's JSON: fast path and the fallback for what orjson refuses."""

from __future__ import annotations

import json

from gateway_milter import jsonio


def test_it_round_trips_ordinary_records_compactly() -> None:
    rec = {"subject": "Grüße", "score": 1.5, "trace": [{"source": "lists", "ms": 0.01}], "n": None}
    raw = jsonio.dumps(rec)
    assert b" " not in raw.replace("Grüße".encode(), b"")
    assert jsonio.loads(raw) == rec == json.loads(raw)


def test_undecodable_header_bytes_survive_the_round_trip() -> None:
    # header values decoded with surrogateescape carry lone surrogates, which orjson refuses
    subject = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    raw = jsonio.dumps({"subject": subject, 1: "non-string key"})
    back = jsonio.loads(raw)
    assert back["subject"] == subject and back["1"] == "non-string key"
    assert back["subject"].encode("utf-8", "surrogateescape") == b"caf\xe9 \xff"


def test_unknown_types_are_written_as_text() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert jsonio.loads(jsonio.dumps({"x": Odd()})) == {"x": "odd"}
