"""Backup and restore of what Bayes learned (``manage.py bayes backup`` / ``bayes restore``).

A backup holds, for each scope chosen (``global``, ``dom:D``, ``user:A``), the three counter
hashes the classifier keeps (bayes.py): the token counts with the learned-message marks
(``counts``), the token model's weights (``weights``) and its AdaGrad sums (``sums``). The file
is gzip-compressed JSON lines, readable by any tool:

    {"format": "bulwark-bayes-backup", "version": 1, "created": ..., "scopes": {...}}
    {"scope": "global", "kind": "counts", "fields": {"#s": 958, "t...": 4294967297, ...}}
    ...
    {"end": true, "lines": N, "fields": {"global": {"counts": n, "weights": n, "sums": n}}}

It moves a classifier between stores (the embedded SQLite store to Redis when a node grows),
and keeps one across a Redis that lost its data. A restore reads the whole file first and
writes nothing unless it is complete and well formed (the last line counts what came before);
a scope that already holds learned data is replaced only when asked. Values are the stored
integers, so a restore gives the same classifications to the bit.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gateway_milter.antispam.bayes import BayesClassifier, field_cache, grad_key, scope_key, weight_key
from gateway_milter.store import StateStore, StoreError

FORMAT = "bulwark-bayes-backup"
VERSION = 1
KINDS: dict[str, Callable[[str], str]] = {"counts": scope_key, "weights": weight_key, "sums": grad_key}
CHUNK = 5000  # fields a line holds (and a store read or write moves)
MAX_SCOPES = 1_000_000  # scopes a backup of every one reads (their names in memory)
MAX_VALUE = (1 << 63) - 1  # what SQLite's INTEGER and Redis's counters hold
# a user scope is the address as the recipient arrived: a quoted local part may hold spaces
SCOPE = re.compile(r"(?:global|dom:[^\s:]+|user:[^\r\n\0]+)\Z")
Progress = Callable[[int, int], None]


class BackupError(ValueError):
    """A backup that cannot be made or restored; the message says why (and where)."""


def learned_scopes(store: StateStore) -> list[str]:
    """Every scope with learned data, ``global`` first: counts, or the token model's weights
    and sums alone (``bayes forget`` takes the counts back but keeps the model's steps)."""
    found: set[str] = set()
    for kind in KINDS.values():
        prefix = kind("")
        keys = store.scan_keys(prefix, limit=MAX_SCOPES + 1)
        found.update(k[len(prefix):] for k in keys)
        if len(keys) > MAX_SCOPES or len(found) > MAX_SCOPES:  # (a backup that left scopes out without a word)
            raise BackupError(f"more than {MAX_SCOPES} scopes with learned data: back up chosen ones "
                              "(--scope), or forget the user scopes no longer used")
    return sorted(found, key=lambda s: (s != "global", s))


def backup(store: StateStore, path: Path, scopes: list[str] | None = None,
           progress: Progress | None = None) -> dict[str, Any]:
    """Write the chosen scopes (default: every learned one) to ``path``; returns the summary
    (the last line). The file appears under its name only when complete."""
    chosen = learned_scopes(store) if scopes is None else list(dict.fromkeys(scopes))
    for s in chosen:
        if not SCOPE.match(s):
            raise BackupError(f"{s!r} is not a scope (global, dom:DOMAIN or user:ADDRESS)")
    bc = BayesClassifier(store)
    header = {"format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "scopes": {s: {"spam_learned": (st := bc.stats(s))["spam_learned"], "ham_learned": st["ham_learned"]}
                         for s in chosen}}
    total = sum(store.counter_fields(k(s)) for s in chosen for k in KINDS.values())
    counts: dict[str, dict[str, int]] = {}
    done = lines = 0
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8") as out:
            out.write(json.dumps(header) + "\n")
            for s in chosen:
                per = counts.setdefault(s, {})
                for kind, key_of in KINDS.items():
                    per[kind] = 0
                    for part in store.counter_items(key_of(s), CHUNK):
                        out.write(json.dumps({"scope": s, "kind": kind, "fields": dict(part)}) + "\n")
                        lines += 1
                        per[kind] += len(part)
                        done += len(part)
                        if progress:
                            progress(done, max(total, done))
            end = {"end": True, "lines": lines, "fields": counts}
            out.write(json.dumps(end) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return end


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise BackupError(f"{path}: line {n}: not JSON ({e.msg})") from None
                if not isinstance(obj, dict):
                    raise BackupError(f"{path}: line {n}: not a JSON object")
                yield n, obj
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        # a truncated or damaged gzip stream, not gzip at all, or unreadable
        raise BackupError(f"{path}: {e}") from None


def _chunk(n: int, obj: dict[str, Any], path: Path) -> tuple[str, str, dict[str, int]]:
    scope, kind, fields = obj.get("scope"), obj.get("kind"), obj.get("fields")
    if not isinstance(scope, str) or not SCOPE.match(scope):
        raise BackupError(f"{path}: line {n}: bad scope {scope!r}")
    if kind not in KINDS:
        raise BackupError(f"{path}: line {n}: bad kind {kind!r} (one of {', '.join(KINDS)})")
    if not isinstance(fields, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_VALUE for v in fields.values()):
        # (a value no store holds failed the restore after --replace had emptied the scope)
        raise BackupError(f"{path}: line {n}: fields must map names to positive integers "
                          f"of at most {MAX_VALUE} (64-bit)")
    return scope, str(kind), fields


def check(path: Path) -> dict[str, Any]:
    """Read the whole file and return its header with ``fields`` (counted per scope and kind);
    :class:`BackupError` for anything that is not a complete backup of this format."""
    path = Path(path)
    header: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    counts: dict[str, dict[str, int]] = {}
    lines = 0
    for n, obj in _lines(path):
        if header is None:
            if obj.get("format") != FORMAT:
                raise BackupError(f"{path}: not a Bayes backup (line 1 has no format {FORMAT!r})")
            if obj.get("version") != VERSION:
                raise BackupError(f"{path}: backup version {obj.get('version')!r}; this release reads {VERSION}")
            if not isinstance(obj.get("scopes"), dict):
                raise BackupError(f"{path}: line 1: no scopes")
            header = obj
            continue
        if end is not None:
            raise BackupError(f"{path}: line {n}: data after the end line")
        if obj.get("end") is True:
            end = obj
            continue
        scope, kind, fields = _chunk(n, obj, path)
        if scope not in header["scopes"]:
            raise BackupError(f"{path}: line {n}: scope {scope} is not in the header")
        per = counts.setdefault(scope, dict.fromkeys(KINDS, 0))
        per[kind] += len(fields)
        lines += 1
    if header is None:
        raise BackupError(f"{path}: empty file")
    if end is None:
        raise BackupError(f"{path}: incomplete: no end line (the backup was cut short)")
    said = {s: {k: v for k, v in per.items() if v} for s, per in (end.get("fields") or {}).items()}
    seen = {s: {k: v for k, v in per.items() if v} for s, per in counts.items()}
    if end.get("lines") != lines or {s: p for s, p in said.items() if p} != {s: p for s, p in seen.items() if p}:
        raise BackupError(f"{path}: incomplete: the end line counts {end.get('lines')} data lines "
                          f"and {said}, the file has {lines} and {seen}")
    return {**header, "fields": counts}


def restore(store: StateStore, path: Path, scopes: list[str] | None = None, replace: bool = False,
            progress: Progress | None = None) -> dict[str, int]:
    """Restore the chosen scopes (default: all in the file) from a backup made by
    :func:`backup`. The file is checked whole first; a scope that holds learned data is only
    replaced with ``replace``. Returns the fields written per scope."""
    path = Path(path)
    info = check(path)
    in_file = list(info["scopes"])
    chosen = in_file if scopes is None else list(dict.fromkeys(scopes))
    missing = [s for s in chosen if s not in info["scopes"]]
    if missing:
        raise BackupError(f"{path}: no scope {', '.join(missing)} in this backup (it has {', '.join(in_file) or 'none'})")
    try:
        held = [s for s in chosen if any(store.counter_fields(k(s)) for k in KINDS.values())]
    except StoreError as e:  # (before the first write: "restore again with --replace" would be wrong)
        raise BackupError(f"the token store cannot be read: {e}") from None
    if held and not replace:
        raise BackupError(f"scope(s) {', '.join(held)} already hold learned data: give --replace to replace them")
    bc = BayesClassifier(store)
    for s in chosen:
        bc.wipe(s)
    total = sum(n for s in chosen for n in info["fields"].get(s, {}).values())
    written: dict[str, int] = dict.fromkeys(chosen, 0)
    done = 0
    wanted = set(chosen)
    try:
        for n, obj in _lines(path):
            if n == 1 or obj.get("end") is True:
                continue
            scope, kind, fields = _chunk(n, obj, path)
            if scope not in wanted:
                continue
            store.add_counters([(KINDS[kind](scope), fields)])
            written[scope] += len(fields)
            done += len(fields)
            if progress:
                progress(done, total)
    finally:
        cache = field_cache(store)
        if cache is not None:
            cache.clear()
    return written
