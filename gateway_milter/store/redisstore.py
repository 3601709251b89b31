"""Redis implementation of the state store (production; shared by processes and nodes).

Counter hashes are Redis hashes (HMGET to read, a script of HINCRBYs to add); a batch of
requests goes out as one write, i.e. one network round trip (:meth:`RedisStore._send`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import redis

from gateway_milter.store import PAIR_UNIT, GuardedUpdate, StoreError, check_key

EVAL_FIELDS = 4096  # fields a script call changes (a background learner's batch can change 20,000)
GUARDED_FIELDS = 32768  # script arguments a round trip of guarded updates carries (about 10 messages)
_pack: Callable[..., bytes] | None
try:  # redis-py's own C parser (ADR 0057); here also the counters' command packer
    import hiredis

    _pack = hiredis.pack_command
except ImportError:  # pragma: no cover - hiredis is a runtime dependency
    _pack = None

# INCRBY then set the expiry only when this call created the key (fixed window).
_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 and v == tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""
# Add deltas to a hash and drop fields that fall to zero or below (forget/untrain).
_HADD = """
for i = 1, #ARGV - 1, 2 do
  local v = redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  if v <= 0 then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1
"""
# apply_guarded, one update: KEYS[1] the guard's hash, then one hash per section; ARGV: the
# guard's field and expected value, then per section its number of pair fields and of plain
# fields, each pair field as (field, packed delta, high delta, low delta), each plain one as
# (field, delta). A pair whose halves only go up takes the packed delta as it is; one that goes
# down is split exactly from its decimal digits (a double holds 2^53, a packed count 2^63) and
# each half is clamped at 0, so a decrement never borrows from the other half.
_GUARDED = """
local function split(s)
  if #s <= 15 then
    local v = tonumber(s)
    local hi = math.floor(v / 4294967296)
    return hi, v - hi * 4294967296
  end
  local hi, r = 0, 0
  for i = 1, #s do
    r = r * 10 + (string.byte(s, i) - 48)
    local q = math.floor(r / 4294967296)
    r = r - q * 4294967296
    hi = hi * 10 + q
  end
  return hi, r
end
local g = redis.call('HGET', KEYS[1], ARGV[1])
if (tonumber(g) or 0) ~= tonumber(ARGV[2]) then return 0 end
local a = 3
for k = 2, #KEYS do
  local key = KEYS[k]
  local np, nd = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  for i = 1, np do
    local f, dh, dl = ARGV[a], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    if dh >= 0 and dl >= 0 then
      redis.call('HINCRBY', key, f, ARGV[a + 1])
    else
      local hi, lo = split(redis.call('HGET', key, f) or '0')
      local nhi, nlo = math.max(hi + dh, 0), math.max(lo + dl, 0)
      if nhi == 0 and nlo == 0 then
        redis.call('HDEL', key, f)
      elseif nhi ~= hi or nlo ~= lo then
        redis.call('HINCRBY', key, f, string.format('%.0f', (nhi - hi) * 4294967296 + (nlo - lo)))
      end
    end
    a = a + 4
  end
  for i = 1, nd do
    local v = redis.call('HINCRBY', key, ARGV[a], ARGV[a + 1])
    if v <= 0 then redis.call('HDEL', key, ARGV[a]) end
    a = a + 2
  end
end
return 1
"""


# the scripts by SHA1: sent as EVALSHA, the script itself only when Redis does not have it
SHA_HADD = hashlib.sha1(_HADD.encode()).hexdigest()
SHA_GUARDED = hashlib.sha1(_GUARDED.encode()).hexdigest()
SCRIPTS = {SHA_HADD: _HADD, SHA_GUARDED: _GUARDED}


class RedisStore:
    # no read cache for Bayes (antispam/bayes.py FieldCache): with hiredis a read of Redis costs
    # the client less CPU than sorting out a cache's hits and misses (bench/bayes_store.py)
    cache_reads = False

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                           decode_responses=True, health_check_interval=30)
        self._incr = self.client.register_script(_INCR)

    def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except redis.RedisError as e:
            raise StoreError(f"redis: {e}") from e

    def get(self, key: str) -> str | None:
        return self._call(self.client.get, check_key(key))  # type: ignore[no-any-return]

    def set(self, key: str, value: str, ttl: float | None = None) -> None:
        self._call(self.client.set, check_key(key), str(value), px=int(ttl * 1000) if ttl else None)

    def add(self, key: str, value: str, ttl: float | None = None) -> bool:
        return bool(self._call(self.client.set, check_key(key), str(value), nx=True,
                               px=int(ttl * 1000) if ttl else None))

    def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(self._call(self.client.delete, *[check_key(k) for k in keys]))

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        return int(self._call(self._incr, keys=[check_key(key)], args=[int(amount), int((ttl or 0) * 1000)]))

    def ttl(self, key: str) -> float | None:
        ms = int(self._call(self.client.pttl, check_key(key)))
        return None if ms < 0 else ms / 1000.0

    def expire(self, keys: Sequence[str], ttl: float) -> int:
        if not ttl or ttl <= 0:
            raise ValueError("expire needs a positive ttl")
        ms = max(1, int(ttl * 1000))
        cmds = [("PEXPIRE", check_key(k), ms) for k in keys]
        if not cmds:
            return 0
        # PEXPIRE sets the same deadline when sent again: safe to retry
        return sum(int(r) for r in self._call(self._send, cmds, True))

    def counters(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[list[int]]:
        cmds = [("HMGET", check_key(key), *fields) for key, fields in requests if fields]
        if not cmds:
            return [[] for _ in requests]
        raw = self._call(self._send, cmds, True)
        out: list[list[int]] = []
        it = iter(raw)
        for _key, fields in requests:
            vals = next(it) if fields else []
            out.append([int(v) if v is not None else 0 for v in vals])
        return out

    def _scripts(self, cmds: list[tuple[Any, ...]]) -> list[Any]:
        """Send writes that call the scripts as ``EVALSHA``, so a round trip carries a script's
        SHA1 (40 characters) instead of its text (``_GUARDED``: 1,314 characters a learned
        message). Redis keeps scripts until it restarts or ``SCRIPT FLUSH``; a call it answers
        ``NOSCRIPT`` has done nothing, and only those calls are sent again, in order, with the
        script's text (which loads it again), together with the other commands that followed the
        first of them (``PEXPIRE`` of a hash the script makes: callers mix in only commands that
        may run twice). Script calls that were carried out are not sent again: a write sent
        twice would count twice. Other error replies raise once every reply is read."""
        replies = self._send(cmds, False, keep_errors=True)
        failed = {i for i, r in enumerate(replies)
                  if isinstance(r, redis.exceptions.NoScriptError) and cmds[i][0] == "EVALSHA"}
        if failed:
            again = [i for i in range(min(failed), len(cmds)) if i in failed or cmds[i][0] != "EVALSHA"]
            resent = self._send([("EVAL", SCRIPTS[cmds[i][1]], *cmds[i][2:]) if i in failed else cmds[i]
                                 for i in again], False, keep_errors=True)
            for i, r in zip(again, resent, strict=True):
                replies[i] = r
        for r in replies:
            if isinstance(r, redis.RedisError):
                raise r
        return replies

    def _send(self, cmds: list[tuple[Any, ...]], retry: bool, keep_errors: bool = False) -> list[Any]:
        """The commands packed by hiredis in C and sent as one write, their replies read in
        order: one round trip, as a pipeline, without redis-py packing each of a Bayes
        read's or write's ~1,000 fields in Python (docs/decisions/0057-hiredis.md). With
        ``retry``, connection errors are retried as redis-py retries its own commands (reads
        only: a write sent again could count twice). After any error the connection is closed,
        so no reply is left unread on it. Without hiredis: redis-py's own pipeline (which
        retries as it always did). With ``keep_errors`` an error reply takes its command's place
        in the list, as an exception, instead of raising: the replies after it are read too."""
        if _pack is None:
            pipe = self.client.pipeline(transaction=False)
            for c in cmds:
                pipe.execute_command(*c)  # type: ignore[no-untyped-call]
            return pipe.execute(raise_on_error=not keep_errors)  # type: ignore[no-any-return]
        packed = [b"".join([_pack(c) for c in cmds])]
        pool = self.client.connection_pool
        conn: Any = pool.get_connection()

        def reply() -> Any:
            try:
                return conn.read_response()
            except redis.ResponseError as e:  # an error reply, read whole: the next reply follows
                if keep_errors:
                    return e
                raise

        def attempt() -> list[Any]:
            conn.send_packed_command(packed)
            return [reply() for _ in cmds]

        try:
            if retry:
                return conn.retry.call_with_retry(attempt, lambda _error: conn.disconnect())  # type: ignore[no-any-return]
            return attempt()
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def add_counters(self, updates: Iterable[tuple[str, Mapping[str, int]]], ttl: float | None = None) -> None:
        """One script call per hash with all its deltas (a learned message changes ~1,500
        fields in three hashes: one HINCRBY each cost 8.6-12.4 ms CPU a message in redis-py)."""
        cmds: list[tuple[Any, ...]] = []
        for key, deltas in updates:
            check_key(key)
            if not deltas:
                continue
            items = list(deltas.items())
            for i in range(0, len(items), EVAL_FIELDS):  # Redis runs one script at a time: keep each short
                args: list[Any] = []
                for f, d in items[i:i + EVAL_FIELDS]:
                    args += [f, int(d)]
                cmds.append(("EVALSHA", SHA_HADD, 1, key, *args))
            if ttl:
                cmds.append(("PEXPIRE", key, int(ttl * 1000)))
        if cmds:
            self._call(self._scripts, cmds)

    def apply_guarded(self, updates: Sequence[GuardedUpdate]) -> list[bool]:
        """One script call per update: Redis runs each script whole, so no other writer comes
        between an update's check and its changes. The calls go in round trips of at most
        ``GUARDED_FIELDS`` fields: a corpus sent in one write (400 messages, about 600,000 fields)
        kept Redis busy past the socket's timeout while the write waited, and failed."""
        out: list[bool] = []
        cmds: list[tuple[Any, ...]] = []
        fields = 0
        for u in updates:
            sections: dict[str, tuple[list[Any], list[Any]]] = {}
            for key, pairs in u.pairs:
                ps = sections.setdefault(check_key(key), ([], []))[0]
                for f, (hi, lo) in pairs.items():
                    ps += [f, int(hi) * PAIR_UNIT + int(lo), int(hi), int(lo)]
            for key, deltas in u.deltas:
                ds = sections.setdefault(check_key(key), ([], []))[1]
                for f, d in deltas.items():
                    ds += [f, int(d)]
            args: list[Any] = [u.guard_field, int(u.expected)]
            for ps, ds in sections.values():
                args += [len(ps) // 4, len(ds) // 2, *ps, *ds]
            cmds.append(("EVALSHA", SHA_GUARDED, 1 + len(sections), check_key(u.guard_key), *sections, *args))
            fields += len(args)
            if fields >= GUARDED_FIELDS:
                out += [bool(int(r)) for r in self._call(self._scripts, cmds)]
                cmds, fields = [], 0
        if cmds:
            out += [bool(int(r)) for r in self._call(self._scripts, cmds)]
        return out

    def counter_fields(self, key: str) -> int:
        return int(self._call(self.client.hlen, check_key(key)))

    def counter_items(self, key: str, batch: int = 5000) -> Iterator[list[tuple[str, int]]]:
        """Every field of a counter hash with its value, about ``batch`` at a time (HSCAN: no
        long command that would hold up the milters; a field changed meanwhile may be read
        before or after the change)."""
        check_key(key)
        cursor = 0
        while True:
            cursor, part = self._call(self.client.hscan, key, cursor, count=batch)
            if part:
                yield [(str(f), int(v)) for f, v in part.items()]
            if not cursor:
                return

    def scan_keys(self, prefix: str, limit: int = 1000) -> list[str]:
        out: list[str] = []
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
        try:  # (scan_iter talks to Redis while it is iterated, not when called)
            for k in self.client.scan_iter(match=pattern, count=500):
                out.append(k)
                if len(out) >= limit:
                    break
        except redis.RedisError as e:
            raise StoreError(f"redis: {e}") from e
        return sorted(out)

    def persistence_warning(self) -> str | None:
        """A warning when this Redis keeps nothing on disk (no ``save`` snapshots, no append-only
        file): Bayes, greylisting's pass list and the BATV keys would be lost at its restart.
        None when it persists, or when it cannot say (CONFIG refused or renamed, as managed
        Redis services do)."""
        try:
            save = self.client.config_get("save").get("save", None)
            aof = self.client.config_get("appendonly").get("appendonly", None)
        except redis.RedisError:
            return None
        if save is None or aof is None or save.strip() or aof.strip().lower() == "yes":
            return None
        return (f"Redis at {self.client.connection_pool.connection_kwargs.get('host', '?')} keeps nothing on disk"
                " (no save snapshots, appendonly no): what Bayes learned, greylisting's pass list and the BATV"
                " keys are lost when it restarts (docs/install.md)")

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False
