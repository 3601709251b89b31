"""Anti-virus through clamd (INSTREAM), with union scanning; ``virustest`` values per RFC 5235.

Verdicts: ``clean``, ``infected`` (with the signature name) or ``unscannable``. What is scanned:
the raw message (clamd's own MIME parser), every decoded part, and, when the MIME view found
an ambiguity, every payload of every other reading of the message (gateway_milter.mime
.ambiguity), so that a part one parser hides is still scanned. Archives are also listed by our
own bounded walker: a bomb, an encrypted or corrupt archive or a RAR (clamd on Debian main has
no unrar) is *unscannable*, never clean.

Scanner failures (no clamd reachable) raise by default, so the runner tempfails the message
(fail mode TEMPFAIL); ``error_action: quarantine`` turns them into ``CLAMAV_ERROR`` instead.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from gateway_milter.layers.base import (
    check_reply,
    BaseSettings,
    Layer,
    LayerFindings,
    PolicyRule,
    SettingsError,
)
from gateway_milter.mime.archives import ArchiveLimits
from gateway_milter.net.clamd import (
    ClamdClient,
    ClamdError,
    ClamdServer,
    client_for,
    configured_servers,
)
from gateway_milter.verdict import FailMode, Outcome, QuarantineQueue, Reply, Stage

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext
    from gateway_milter.pipeline.runner import LayerResult

# RFC 5235 section 3.2 (virustest values)
VIRUSTEST_NOT_TESTED = 0
VIRUSTEST_CLEAN = 1
VIRUSTEST_POSSIBLY = 4
VIRUSTEST_INFECTED = 5


def virustest_value(result: LayerResult) -> str:
    """The RFC 5235 ``virustest`` value of an antivirus layer result (for the Sieve runtime)."""
    if result.error or result.skipped:
        return str(VIRUSTEST_NOT_TESTED)
    return str(result.facts.get("virustest", VIRUSTEST_NOT_TESTED))


@dataclass(frozen=True, slots=True)
class AntivirusSettings(BaseSettings):
    servers: tuple[str, ...] = ()  # empty: GATEWAY_CLAMD (then the Debian socket)
    timeout_s: float = 30.0
    infected_action: str = "refuse"  # refuse | quarantine (admin)
    unscannable_action: str = "quarantine"  # quarantine (admin) | refuse | tempfail
    error_action: str = "tempfail"  # tempfail | quarantine (admin)
    scan_parts: bool = True
    scan_alternatives: bool = True
    max_stream_bytes: int = 25 * 1024 * 1024  # keep equal to clamd's StreamMaxLength
    unscannable_signatures: tuple[str, ...] = ("Heuristics.Encrypted.", "Heuristics.Limits.Exceeded",
                                               "Heuristics.Broken.")
    archive_max_depth: int = 5
    archive_max_entries: int = 2000
    archive_max_total_bytes: int = 100 * 1024 * 1024
    archive_max_ratio: float = 100.0
    archive_time_s: float = 5.0
    virus_score: float = 100.0
    reject_code: str = "554"
    reject_enhanced: str = "5.7.1"
    reject_text: str = "Message refused: a virus was found"

    # where the milter connects (message bytes go there) and the hostile-input bounds
    global_only_fields: ClassVar[frozenset[str]] = frozenset({
        "servers", "timeout_s", "max_stream_bytes", "archive_max_depth", "archive_max_entries",
        "archive_max_total_bytes", "archive_max_ratio", "archive_time_s"})

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        _choice("infected_action", self.infected_action, ("refuse", "quarantine"))
        _choice("unscannable_action", self.unscannable_action, ("quarantine", "refuse", "tempfail"))
        _choice("error_action", self.error_action, ("tempfail", "quarantine"))
        if not 0.5 <= self.timeout_s <= 120:
            raise SettingsError("timeout_s", "must be between 0.5 and 120 seconds")
        for i, s in enumerate(self.servers):
            try:
                ClamdServer.parse(s)
            except ValueError as e:
                raise SettingsError(f"servers[{i}]", str(e)) from None
        if self.archive_max_depth < 1 or self.archive_max_entries < 1 or self.archive_max_total_bytes < 1024:
            raise SettingsError("archive_max_depth", "archive limits must be positive")
        if self.archive_max_ratio < 2 or self.archive_time_s <= 0:
            raise SettingsError("archive_max_ratio", "ratio must be >= 2 and time > 0")
        check_reply(self.reject_code, self.reject_enhanced, self.reject_text)

    @property
    def archive_limits(self) -> ArchiveLimits:
        return ArchiveLimits(self.archive_max_depth, self.archive_max_entries, self.archive_max_total_bytes,
                             self.archive_max_ratio, time_budget_s=self.archive_time_s)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SettingsError(name, f"must be one of {', '.join(allowed)}, not {value!r}")


class AntivirusLayer(Layer[AntivirusSettings]):
    id = "antivirus"
    stage = Stage.EOM
    fail_mode = FailMode.TEMPFAIL
    Settings = AntivirusSettings
    budget_s = 30.0
    title = "Antivirus"
    description = "ClamAV scan of the message, every decoded part and every MIME interpretation"

    def client(self, settings: AntivirusSettings) -> ClamdClient:
        servers = settings.servers or tuple(configured_servers())
        return client_for(tuple(servers), settings.timeout_s)

    def check(self, ctx: MessageContext, settings: AntivirusSettings) -> LayerFindings:
        t0 = time.perf_counter()
        budget = ctx.runner.remaining(settings.timeout_s) if ctx.runner is not None else settings.timeout_s
        deadline = time.monotonic() + budget
        view = ctx.mime
        streams: list[tuple[str, bytes]] = [("message", ctx.raw_bytes())]
        unscannable: list[str] = []
        if settings.scan_parts:
            for p in view.parts:
                if p.payload:
                    streams.append((f"part {p.path_str}" + (f" ({p.safe_name})" if p.filename else ""), p.payload))
        if view.is_ambiguous and settings.scan_alternatives:
            alts = view.alternatives()
            streams += [(f"alternative {i + 1}", data) for i, data in enumerate(alts.payloads)]
            if not alts.complete:
                unscannable.append("mime: too many interpretations to scan them all")
        if any(a.code in ("TOO_DEEP", "TOO_MANY_PARTS", "UNPARSEABLE") for a in view.ambiguities):
            unscannable.append("mime: nesting or part count over the limit, or not parseable")
        limits = settings.archive_limits
        for p in view.parts:
            rep = view.archive(p, limits)
            if rep is not None and rep.unscannable:
                unscannable.append(f"part {p.path_str} ({p.safe_name or rep.kind}): {', '.join(rep.reasons)}")

        client = self.client(settings)
        seen: set[bytes] = set()
        infected: list[dict[str, str]] = []
        scanned = 0
        scanned_bytes = 0
        server = ""
        raw_skipped = False
        errors: list[str] = []
        for where, data in streams:
            digest = hashlib.blake2b(data, digest_size=16).digest()
            if digest in seen:
                continue
            seen.add(digest)
            if len(data) > settings.max_stream_bytes:
                if where == "message" and settings.scan_parts and view.parts and not view.is_ambiguous:
                    # every decoded part is still scanned on its own; only clamd's own MIME pass is lost
                    raw_skipped = True
                    continue
                unscannable.append(f"{where}: {len(data)} bytes over the scan limit")
                continue
            if time.monotonic() >= deadline:
                errors.append("scan time budget exhausted")
                break
            try:
                reply = client.scan(data, deadline)
            except ClamdError as e:
                errors.append(str(e))
                break
            scanned += 1
            scanned_bytes += len(data)
            server = reply.server
            if reply.status == "infected":
                if reply.signature.startswith(settings.unscannable_signatures):
                    unscannable.append(f"{where}: {reply.signature}")
                    continue
                infected.append({"signature": reply.signature, "where": where})
                break  # the verdict cannot get worse; a virus found is enough
            if reply.status == "error":
                if reply.over_limit:
                    unscannable.append(f"{where}: {reply.message}")
                else:
                    errors.append(f"{reply.server}: {reply.message}")
                    break

        facts: dict[str, Any] = {
            "scanned_streams": scanned,
            "scanned_bytes": scanned_bytes,
            "server": server,
            "ambiguous": view.is_ambiguous,
            "raw_skipped": raw_skipped,
            "ms": round((time.perf_counter() - t0) * 1000, 3),
        }
        if infected:
            sig = infected[0]["signature"]
            facts.update(verdict="infected", signature=sig, infections=infected, virustest=VIRUSTEST_INFECTED,
                         unscannable_reasons=unscannable)
            return LayerFindings(facts, (self.symbol("CLAMAV_VIRUS", settings.virus_score, sig),))
        if errors:
            if settings.error_action == "tempfail":
                # never "clean": the runner turns this into a 4xx (fail mode TEMPFAIL)
                raise ClamdError("; ".join(errors))
            facts.update(verdict="error", signature="", errors=errors, virustest=VIRUSTEST_NOT_TESTED,
                         unscannable_reasons=unscannable)
            return LayerFindings(facts, (self.symbol("CLAMAV_ERROR", 0.0, errors[0][:200]),))
        if unscannable:
            facts.update(verdict="unscannable", signature="", unscannable_reasons=unscannable,
                         virustest=VIRUSTEST_POSSIBLY)
            return LayerFindings(facts, (self.symbol("CLAMAV_UNSCANNABLE", 0.0, unscannable[0][:200]),))
        facts.update(verdict="clean", signature="", unscannable_reasons=[], virustest=VIRUSTEST_CLEAN)
        return LayerFindings(facts)

    def policy_rules(self, settings: AntivirusSettings) -> list[PolicyRule]:
        rules: list[PolicyRule] = []
        if settings.infected_action == "refuse":
            reply = Reply(settings.reject_code, settings.reject_enhanced, settings.reject_text)
            rules.append(PolicyRule("virus", Outcome.reject(reply, "virus found"), ("CLAMAV_VIRUS",)))
        else:
            rules.append(PolicyRule("virus", Outcome.quarantine(QuarantineQueue.ADMIN, "virus found"),
                                    ("CLAMAV_VIRUS",)))
        if settings.unscannable_action == "quarantine":
            o = Outcome.quarantine(QuarantineQueue.ADMIN, "content could not be scanned")
        elif settings.unscannable_action == "refuse":
            o = Outcome.reject(Reply("554", "5.7.1", "Message refused: content could not be scanned"),
                               "content could not be scanned")
        else:
            o = Outcome.tempfail(Reply("451", "4.7.1", "Content could not be scanned, try again later"),
                                 "content could not be scanned")
        rules.append(PolicyRule("unscannable", o, ("CLAMAV_UNSCANNABLE",)))
        if settings.error_action == "quarantine":
            rules.append(PolicyRule("scanner_error", Outcome.quarantine(QuarantineQueue.ADMIN, "virus scanner error"),
                                    ("CLAMAV_ERROR",)))
        return rules
