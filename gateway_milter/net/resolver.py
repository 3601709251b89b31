"""The one DNS resolver of the gateway (dnspython; RFC 1034/1035, RFC 2308 negative caching).

Every layer that needs DNS (SPF, DKIM, DMARC, ARC, reverse DNS, callback, DNSBL, URIBL) goes
through :func:`get_resolver`. Stable API (other layers rely on it; change it additively only):

``get_resolver() -> Resolver``
    The process-wide resolver, built on first use from ``GATEWAY_DNS_SERVERS`` (``host[:port],...``;
    the system resolver from /etc/resolv.conf when unset) and ``GATEWAY_DNS_TIMEOUT``.
``set_resolver(resolver | None)``
    Test seam: install another resolver (``None`` rebuilds from the environment on next use).
``Resolver(servers=[("127.0.0.1", 5353)], timeout=2.0)``
    Point a resolver at a local DNS server (tests: ``tests.services.knot_server``).
``Resolver(backend=StaticBackend({...}))``
    Feed zone data without a server (conformance vectors, hostile-DNS unit tests).
``resolver.query(name, rdtype, budget=None) -> DnsAnswer``
    Blocking lookup through the per-TTL cache. Never raises for DNS trouble: the answer's
    ``status`` says ``ok``, ``nxdomain``, ``nodata``, ``servfail``, ``timeout`` or ``invalid``;
    ``answer.temporary`` is true for ``servfail``/``timeout`` (callers report temperror/unknown,
    never a pass).
``resolver.prefetch(name, rdtype, budget=None) -> Future[DnsAnswer]``
    Start a lookup now on the small shared thread pool; concurrent identical lookups share
    one future. ``query`` later finds the answer in the cache or joins the in-flight lookup.
``resolver.query_a / query_aaaa / query_txt / query_mx / query_ptr(name_or_ip, budget=None)``
    Typed helpers (``query_ptr`` takes an IP address).
``DnsBudget(seconds, max_queries)``
    DNS budget: every lookup is bounded by what is left; an exhausted budget gives
    ``timeout`` answers without touching the network. ``budget_for(ctx)`` gives the current
    SMTP stage's budget of a message (its own deadline, capped by the stage's time budget;
    one query count, 200 by default, for the whole message).

Values in ``DnsAnswer.records``: A/AAAA -> address text; MX -> ``(preference, exchange)``;
PTR/CNAME/NS -> host name without the trailing dot; TXT -> the character-strings joined
(str, decoded as UTF-8 with surrogateescape); ``DnsAnswer.txt_parts`` keeps the raw bytes.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import dns.exception
import dns.flags
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
import dns.reversename

log = logging.getLogger("bulwark.dns")

OK = "ok"
NXDOMAIN = "nxdomain"
NODATA = "nodata"
SERVFAIL = "servfail"
TIMEOUT = "timeout"
INVALID = "invalid"  # not a valid DNS name: no query is sent
TEMPORARY = frozenset({SERVFAIL, TIMEOUT})

RDTYPES = ("A", "AAAA", "TXT", "MX", "PTR", "CNAME", "NS", "SOA")
# Answers larger than this are refused as hostile (a TXT "bomb"); 64 KiB is the DNS message cap.
MAX_RECORDS = 100
NEGATIVE_TTL_CAP = 900
POSITIVE_TTL_CAP = 86400
MIN_TTL = 1


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    name: str
    rdtype: str
    status: str
    records: tuple[Any, ...] = ()
    ttl: int = 0
    txt_parts: tuple[tuple[bytes, ...], ...] = ()
    error: str = ""
    from_cache: bool = False

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def temporary(self) -> bool:
        return self.status in TEMPORARY

    @property
    def empty(self) -> bool:
        """No data and no temporary error (NXDOMAIN, NODATA, invalid name): a "void" lookup."""
        return self.status in (NXDOMAIN, NODATA, INVALID)


class QueryCounter:
    """Network queries made for one message, across its SMTP stages (thread-safe)."""

    def __init__(self, limit: int = 200) -> None:
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.count >= self.limit:
                return False
            self.count += 1
            return True


BUDGET_SPENT = "message DNS budget exhausted"  # (the error of a lookup its budget did not allow)


class DnsBudget:
    """A DNS time allowance (a deadline) plus the message's query counter (thread-safe)."""

    def __init__(self, seconds: float = 20.0, max_queries: int = 200, counter: QueryCounter | None = None) -> None:
        self.deadline = time.monotonic() + seconds
        self.counter = counter if counter is not None else QueryCounter(max_queries)

    @property
    def queries(self) -> int:
        return self.counter.count

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def take(self) -> bool:
        """Account one network query; False when the time or the query allowance is spent."""
        if self.remaining() <= 0:
            return False
        return self.counter.take()


def budget_for(ctx: Any, seconds: float = 20.0, max_queries: int = 200) -> DnsBudget:
    """The DNS budget of the message's current SMTP stage, kept in ``ctx.facts``.

    Each stage gets its own deadline (at most ``seconds``, and never past the stage's time
    budget), so a slow DATA phase cannot eat the DNS time of end-of-message checks; the
    query count (``max_queries``) is shared by the whole message."""
    runner = getattr(ctx, "runner", None)
    stage = getattr(getattr(runner, "stage", None), "value", "any")
    key = f"_dns_budget_{stage}"
    b = ctx.facts.get(key)
    if not isinstance(b, DnsBudget):
        counter = ctx.facts.get("_dns_queries")
        if not isinstance(counter, QueryCounter):
            counter = ctx.facts["_dns_queries"] = QueryCounter(max_queries)
        limit = seconds
        if runner is not None:
            left = runner.remaining()
            limit = min(seconds, left) if left > 0 else 0.0
        b = ctx.facts[key] = DnsBudget(limit, counter=counter)
    return b


def within(budget: DnsBudget, seconds: float) -> DnsBudget:
    """``budget`` with at most ``seconds`` left from now (a layer's own time budget), the same
    query counter: the waits of a layer's lookups end with it, whatever its stage has left."""
    return DnsBudget(min(budget.remaining(), seconds), counter=budget.counter)


class Backend(Protocol):
    def lookup(self, name: str, rdtype: str, timeout: float) -> DnsAnswer: ...


def _normalise(name: str) -> str | None:
    """Lower-case, no trailing dot, IDNA; None when the name can't be a DNS name."""
    n = name.strip().rstrip(".").lower()
    if not n or len(n) > 253:
        return None
    try:
        n = n.encode("idna").decode("ascii") if not n.isascii() else n
    except UnicodeError:
        return None
    labels = n.split(".")
    if any(not 0 < len(label) < 64 for label in labels):
        return None
    return n


class DnspythonBackend:
    """Real DNS over UDP (TCP on truncation) with dnspython."""

    def __init__(self, servers: Sequence[tuple[str, int]] = (), timeout: float = 3.0) -> None:
        if servers:
            r = dns.resolver.Resolver(configure=False)
            r.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
        else:
            r = dns.resolver.Resolver(configure=True)
        r.timeout = timeout
        r.lifetime = timeout
        r.cache = None  # our cache sits above, with per-message accounting
        r.retry_servfail = False
        self._resolver = r
        self.timeout = timeout

    def lookup(self, name: str, rdtype: str, timeout: float) -> DnsAnswer:
        try:
            # the name's labels as they are: from text, dnspython would read "\" as an escape
            # ("ev\il.test" asked as evil.test, "\046" a dot inside a label)
            qname = dns.name.Name([label.encode("ascii") for label in name.split(".")] + [b""])
            ans = self._resolver.resolve(qname, rdtype, lifetime=max(0.05, timeout), search=False,
                                         raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as e:
            qnames = e.qnames()  # type: ignore[no-untyped-call]
            resp = e.response(qnames[0]) if qnames else None  # type: ignore[no-untyped-call]
            return DnsAnswer(name, rdtype, NXDOMAIN, ttl=_negative_ttl(resp))
        except dns.resolver.NoNameservers as e:  # SERVFAIL / REFUSED from every server
            return DnsAnswer(name, rdtype, SERVFAIL, error=str(e)[:200])
        except dns.exception.Timeout as e:
            return DnsAnswer(name, rdtype, TIMEOUT, error=str(e)[:200])
        except (dns.name.NameTooLong, dns.name.LabelTooLong, dns.name.EmptyLabel, UnicodeError) as e:
            return DnsAnswer(name, rdtype, INVALID, error=str(e)[:200])
        except dns.exception.DNSException as e:  # YXDOMAIN, malformed replies, ...
            return DnsAnswer(name, rdtype, SERVFAIL, error=f"{type(e).__name__}: {e}"[:200])
        if ans.rrset is None:
            return DnsAnswer(name, rdtype, NODATA, ttl=_negative_ttl(ans.response))
        return _from_rrset(name, rdtype, list(ans.rrset), ans.rrset.ttl)


def _negative_ttl(response: Any) -> int:
    """RFC 2308: the SOA minimum (capped) in the authority section, else 60 s."""
    try:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(min(rrset.ttl, rrset[0].minimum, NEGATIVE_TTL_CAP))
    except (AttributeError, IndexError):
        pass
    return 60


def _from_rrset(name: str, rdtype: str, rdatas: list[Any], ttl: int) -> DnsAnswer:
    if len(rdatas) > MAX_RECORDS:
        return DnsAnswer(name, rdtype, SERVFAIL, error=f"{len(rdatas)} records: answer refused as hostile")
    records: list[Any] = []
    parts: list[tuple[bytes, ...]] = []
    for rd in rdatas:
        if rdtype in ("A", "AAAA"):
            records.append(rd.address)
        elif rdtype == "MX":
            records.append((int(rd.preference), rd.exchange.to_text(omit_final_dot=True).lower()))
        elif rdtype in ("PTR", "CNAME", "NS"):
            records.append(rd.target.to_text(omit_final_dot=True))
        elif rdtype == "TXT":
            strings = tuple(bytes(s) for s in rd.strings)
            parts.append(strings)
            records.append(b"".join(strings).decode("utf-8", "surrogateescape"))
        else:
            records.append(rd.to_text())
    return DnsAnswer(name, rdtype, OK, tuple(records), max(MIN_TTL, min(int(ttl), POSITIVE_TTL_CAP)),
                     tuple(parts))


class StaticBackend:
    """Zone data in memory (test seam and conformance vectors).

    ``records``: ``{(name, rdtype): value}`` where value is a list of records in the
    :class:`DnsAnswer` formats (TXT may be ``str``, ``bytes`` or a list of ``bytes`` parts),
    or one of the strings ``"TIMEOUT"``, ``"SERVFAIL"``. ``(name, "CNAME")`` entries are
    followed (at most 8 steps, then SERVFAIL). A name with no entry of any type is NXDOMAIN;
    a name with other types is NODATA. ``calls`` counts lookups (tests assert on caching).
    """

    def __init__(self, records: Mapping[tuple[str, str], Any] | None = None, ttl: int = 300,
                 delay: float = 0.0) -> None:
        self.records: dict[tuple[str, str], Any] = {}
        self.names: set[str] = set()
        self.ttl = ttl
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        for (n, t), v in (records or {}).items():
            self.add(n, t, v)

    def add(self, name: str, rdtype: str, value: Any) -> None:
        n = name.lower().rstrip(".")
        key = (n, rdtype.upper())
        if isinstance(value, list):
            self.records.setdefault(key, [])
            if isinstance(self.records[key], list):
                self.records[key].extend(value)
        else:
            self.records[key] = value
        self.names.add(n)

    def lookup(self, name: str, rdtype: str, timeout: float) -> DnsAnswer:
        with self._lock:
            self.calls.append((name, rdtype))
        if self.delay:
            time.sleep(min(self.delay, timeout))
        n = name
        for _ in range(9):
            v = self.records.get((n, rdtype))
            if v is None and rdtype != "CNAME" and isinstance(self.records.get((n, "CNAME")), list):
                n = str(self.records[(n, "CNAME")][0]).lower().rstrip(".")
                continue
            break
        else:
            return DnsAnswer(name, rdtype, SERVFAIL, error="CNAME chain too long")
        if v == "TIMEOUT":
            if self.delay == 0:
                time.sleep(min(timeout, 0.01))
            return DnsAnswer(name, rdtype, TIMEOUT, error="timed out")
        if v == "SERVFAIL":
            return DnsAnswer(name, rdtype, SERVFAIL, error="SERVFAIL")
        if v is None:
            if any(k[0] == n and self.records[k] == "TIMEOUT" for k in self.records):
                return DnsAnswer(name, rdtype, TIMEOUT, error="timed out")
            return DnsAnswer(name, rdtype, NODATA if n in self.names else NXDOMAIN, ttl=60)
        if not v:
            return DnsAnswer(name, rdtype, NODATA, ttl=60)
        records: list[Any] = []
        parts: list[tuple[bytes, ...]] = []
        for r in v:
            if rdtype == "TXT":
                p = tuple(x if isinstance(x, bytes) else str(x).encode() for x in r) if isinstance(r, (list, tuple)) \
                    else ((r if isinstance(r, bytes) else str(r).encode("utf-8", "surrogateescape")),)
                parts.append(p)
                records.append(b"".join(p).decode("utf-8", "surrogateescape"))
            elif rdtype == "MX":
                records.append((int(r[0]), str(r[1]).lower().rstrip(".")))
            else:
                records.append(str(r).rstrip("."))
        if len(records) > MAX_RECORDS:
            return DnsAnswer(name, rdtype, SERVFAIL, error="answer refused as hostile")
        return DnsAnswer(name, rdtype, OK, tuple(records), self.ttl, tuple(parts))


@dataclass(slots=True)
class _CacheEntry:
    answer: DnsAnswer
    expires: float


@dataclass(slots=True)
class ResolverStats:
    queries: int = 0
    cache_hits: int = 0
    temporary_errors: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class Resolver:
    """Caching, budget-aware DNS resolver; thread-safe, shared by every connection."""

    def __init__(self, servers: Sequence[tuple[str, int]] = (), timeout: float = 3.0, *,
                 backend: Backend | None = None, cache_size: int = 20000, workers: int = 8,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.backend: Backend = backend if backend is not None else DnspythonBackend(servers, timeout)
        self.cache_size = cache_size
        self.stats = ResolverStats()
        self._cache: OrderedDict[tuple[str, str], _CacheEntry] = OrderedDict()
        self._inflight: dict[tuple[str, str], Future[DnsAnswer]] = {}
        # prefetched lookups no worker has started yet: (key, budget, generation) by future. A
        # caller waiting for one runs it itself: behind lookups of a zone that does not answer
        # (a whole pool of them), a queued lookup of a healthy zone was reported timed out
        # without ever being sent, and a listed client accepted
        self._pending: dict[Future[DnsAnswer], tuple[tuple[str, str], DnsBudget | None, int]] = {}
        self._lock = threading.Lock()
        self._generation = 0  # clear_cache's count: a lookup started before a clear caches nothing
        self._pool: ThreadPoolExecutor | None = None
        self._workers = workers
        self._clock = clock

    # -- public API ------------------------------------------------------------------------------
    def query(self, name: str, rdtype: str, budget: DnsBudget | None = None) -> DnsAnswer:
        rdtype = rdtype.upper()
        if rdtype not in RDTYPES:
            raise ValueError(f"unsupported record type {rdtype!r}")
        n = _normalise(name)
        if n is None:
            return DnsAnswer(name, rdtype, INVALID, error="not a valid DNS name")
        key = (n, rdtype)
        cached = self._cached(key)
        if cached is not None:
            return cached
        own: Future[DnsAnswer] | None = None
        with self._lock:
            fut = self._inflight.get(key)
            if fut is None:  # register this lookup so that concurrent callers share it
                own = self._inflight[key] = Future()
            generation = self._generation
        if fut is not None:
            return self._wait(fut, n, rdtype, budget)
        assert own is not None
        return self._settle(own, (key, budget, generation))

    def prefetch(self, name: str, rdtype: str, budget: DnsBudget | None = None) -> Future[DnsAnswer]:
        rdtype = rdtype.upper()
        n = _normalise(name)
        if n is None or rdtype not in RDTYPES:
            done: Future[DnsAnswer] = Future()
            done.set_result(DnsAnswer(name, rdtype, INVALID, error="not a valid DNS name or type"))
            return done
        key = (n, rdtype)
        cached = self._cached(key)
        if cached is not None:
            done = Future()
            done.set_result(cached)
            return done
        with self._lock:
            fut = self._inflight.get(key)
            if fut is not None:
                return fut
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="dns")
            fut = Future()
            self._pending[fut] = (key, budget, self._generation)
            self._inflight[key] = fut
        self._pool.submit(self._run_pending, fut)
        return fut

    def wait(self, fut: Future[DnsAnswer], name: str, rdtype: str, budget: DnsBudget | None = None) -> DnsAnswer:
        """The answer of a lookup :meth:`prefetch` started: at once when it is done (a time-out
        included: never sent again), else waited for within the budget; one no worker has
        started yet is run here."""
        return self._wait(fut, name, rdtype.upper(), budget)

    def query_a(self, name: str, budget: DnsBudget | None = None) -> DnsAnswer:
        return self.query(name, "A", budget)

    def query_aaaa(self, name: str, budget: DnsBudget | None = None) -> DnsAnswer:
        return self.query(name, "AAAA", budget)

    def query_txt(self, name: str, budget: DnsBudget | None = None) -> DnsAnswer:
        return self.query(name, "TXT", budget)

    def query_mx(self, name: str, budget: DnsBudget | None = None) -> DnsAnswer:
        return self.query(name, "MX", budget)

    def query_ptr(self, ip: str, budget: DnsBudget | None = None) -> DnsAnswer:
        try:
            rev = dns.reversename.from_address(str(ipaddress.ip_address(ip))).to_text(omit_final_dot=True)
        except ValueError:
            return DnsAnswer(str(ip), "PTR", INVALID, error="not an IP address")
        return self.query(rev, "PTR", budget)

    def query_addresses(self, name: str, budget: DnsBudget | None = None) -> tuple[DnsAnswer, DnsAnswer]:
        """A and AAAA, looked up concurrently."""
        fa, f6 = self.prefetch(name, "A", budget), self.prefetch(name, "AAAA", budget)
        return self._wait(fa, name, "A", budget), self._wait(f6, name, "AAAA", budget)

    def clear_cache(self) -> None:
        """Forgets every answer, and every lookup still in flight: one started before the clear
        neither writes its answer into the cache afterwards nor is joined by a later caller
        (a prefetch still running would otherwise put back the answer just cleared)."""
        with self._lock:
            self._cache.clear()
            self._inflight.clear()
            self._generation += 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- internals -------------------------------------------------------------------------------
    def _run_pending(self, fut: Future[DnsAnswer]) -> None:
        """A worker's turn at a prefetched lookup, unless a waiter has taken it."""
        with self._lock:
            job = self._pending.pop(fut, None)
        if job is not None:
            self._settle(fut, job)

    def _settle(self, fut: Future[DnsAnswer], job: tuple[tuple[str, str], DnsBudget | None, int]) -> DnsAnswer:
        key, budget, generation = job
        ans = DnsAnswer(key[0], key[1], SERVFAIL, error="lookup did not complete")
        try:
            ans = self._resolve(key, budget, generation)
        finally:
            fut.set_result(ans)
        return ans

    def _wait(self, fut: Future[DnsAnswer], name: str, rdtype: str, budget: DnsBudget | None) -> DnsAnswer:
        with self._lock:
            job = self._pending.pop(fut, None)
        if job is not None:  # still queued: run it here rather than wait behind the others,
            # under this caller's budget (the one that started it may be another message's, spent)
            key, started_with, generation = job
            return self._settle(fut, (key, budget if budget is not None else started_with, generation))
        wait = min(self.timeout, budget.remaining()) if budget else self.timeout
        try:
            ans = fut.result(timeout=wait + 0.05)
        except TimeoutError:
            return DnsAnswer(name, rdtype, TIMEOUT, error="budget exhausted while waiting")
        if ans.error == BUDGET_SPENT and budget is not None and budget.remaining() > 0:
            # the lookup joined was not sent: the budget it ran under (another caller's) was
            # spent; this caller's may not be (asked once more, under it, not shared)
            with self._lock:
                generation = self._generation
            return self._settle(Future(), ((_normalise(name) or name, rdtype), budget, generation))
        return ans

    def _cached(self, key: tuple[str, str]) -> DnsAnswer | None:
        with self._lock:
            e = self._cache.get(key)
            if e is None:
                return None
            if e.expires <= self._clock():
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            self.stats.cache_hits += 1
        a = e.answer
        return DnsAnswer(a.name, a.rdtype, a.status, a.records, a.ttl, a.txt_parts, a.error, True)

    def _resolve(self, key: tuple[str, str], budget: DnsBudget | None, generation: int) -> DnsAnswer:
        """``generation``: clear_cache's count when the lookup was registered in flight (read
        under the lock with it, so that a clear in between is seen)."""
        name, rdtype = key
        try:
            if budget is not None and not budget.take():
                ans = DnsAnswer(name, rdtype, TIMEOUT, error=BUDGET_SPENT)
            else:
                timeout = min(self.timeout, budget.remaining()) if budget else self.timeout
                try:
                    ans = self.backend.lookup(name, rdtype, timeout)
                except Exception as e:  # noqa: BLE001 - a broken backend is a temporary DNS error
                    log.warning("DNS backend error for %s/%s: %s", name, rdtype, e)
                    ans = DnsAnswer(name, rdtype, SERVFAIL, error=f"{type(e).__name__}: {e}"[:200])
            with self._lock:
                self.stats.queries += 1
                self.stats.by_status[ans.status] = self.stats.by_status.get(ans.status, 0) + 1
                if ans.temporary:
                    self.stats.temporary_errors += 1
                elif ans.ttl > 0 and generation == self._generation:  # temporary errors are never cached
                    self._cache[key] = _CacheEntry(ans, self._clock() + ans.ttl)
                    self._cache.move_to_end(key)
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
            return ans
        finally:
            with self._lock:
                if generation == self._generation:  # (after a clear the key may be a newer lookup's)
                    self._inflight.pop(key, None)


_default: Resolver | None = None
_default_lock = threading.Lock()


def get_resolver() -> Resolver:
    """The process-wide resolver (built from GATEWAY_DNS_SERVERS / GATEWAY_DNS_TIMEOUT)."""
    global _default
    r = _default
    if r is None:
        with _default_lock:
            if _default is None:
                from gateway_milter import envconfig

                servers = envconfig.env_hostports("GATEWAY_DNS_SERVERS", 53)
                timeout = envconfig.env_float("GATEWAY_DNS_TIMEOUT", 3.0, 0.1)
                _default = Resolver(servers, timeout)
            r = _default
    return r


def set_resolver(resolver: Resolver | None) -> Resolver | None:
    """Install ``resolver`` as the process-wide one; returns the previous one (test seam)."""
    global _default
    with _default_lock:
        prev, _default = _default, resolver
    return prev
