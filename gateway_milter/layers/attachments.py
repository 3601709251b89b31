"""Attachment filtering: names, extensions (also double ones), true type by content, archives
(zip, 7z, tar, gzip, bzip2, xz; nested, bounded), encrypted archives, Office macros,
executables and scripts. Global and per domain; per direction.

Names come from every place a client could take them (RFC 2183 ``filename``, RFC 2231
``filename*``, Content-Type ``name``, RFC 2047 encoded words), and every one of them is checked.
Member names are only compared with patterns: they never reach a path or a shell.

Actions: ``refuse``, ``quarantine_user``, ``quarantine_admin`` or ``strip`` (the offending
parts are replaced by a notice by gateway_milter.transforms.strip, and the original message is
kept in the admin quarantine).
"""

from __future__ import annotations

import fnmatch
import re
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
from gateway_milter.mime import detect
from gateway_milter.mime.archives import ArchiveLimits, ArchiveReport
from gateway_milter.verdict import (
    Direction,
    FailMode,
    Outcome,
    QuarantineQueue,
    Reply,
    Stage,
)

if TYPE_CHECKING:
    from gateway_milter.context import MessageContext
    from gateway_milter.mime.view import MimePart

DEFAULT_BLOCKED_EXTENSIONS = (
    "ade", "adp", "app", "application", "appref-ms", "bas", "bat", "chm", "cmd", "com", "cpl", "dll",
    "exe", "gadget", "hta", "inf", "ins", "isp", "jar", "js", "jse", "lnk", "mde", "msc", "msi", "msp",
    "mst", "iso", "img", "pif", "ps1", "ps1xml", "psc1", "psm1", "reg", "scf", "scr", "sct", "shb", "shs", "url",
    "vb", "vbe", "vbs", "vhd", "vhdx", "ws", "wsc", "wsf", "wsh", "xll", "xbap",
)
# Extensions that make a harmless-looking first half of a double extension.
DOCUMENT_EXTENSIONS = frozenset({
    "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "rtf", "jpg", "jpeg", "png", "gif",
    "zip", "mp3", "mp4", "avi", "htm", "html", "csv", "odt", "ods",
})
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f]")
ACTIONS = ("refuse", "quarantine_user", "quarantine_admin", "strip")


@dataclass(frozen=True, slots=True)
class AttachmentSettings(BaseSettings):
    action: str = "refuse"  # refuse | quarantine_user | quarantine_admin | strip
    directions: tuple[str, ...] = ("inbound", "outbound", "local")
    blocked_extensions: tuple[str, ...] = DEFAULT_BLOCKED_EXTENSIONS
    blocked_name_patterns: tuple[str, ...] = ()  # shell-style patterns, case-insensitive
    allowed_name_patterns: tuple[str, ...] = ()  # exempt names (never exempts executables by content)
    block_double_extensions: bool = True
    blocked_types: tuple[str, ...] = ()  # detected types; "type/*" matches a whole family
    block_executables: bool = True
    block_scripts: bool = True
    block_type_mismatch: bool = False  # mismatches always score; with this they also block
    block_macros: bool = True
    scan_archives: bool = True
    block_encrypted_archives: bool = True
    block_unscannable_archives: bool = True
    archive_max_depth: int = 5
    archive_max_entries: int = 2000
    archive_max_total_bytes: int = 100 * 1024 * 1024
    archive_max_ratio: float = 100.0
    archive_time_s: float = 5.0
    mismatch_score: float = 3.0
    blocked_score: float = 10.0
    reject_code: str = "554"
    reject_enhanced: str = "5.7.1"
    reject_text: str = "Message refused: attachment not allowed by policy"

    # hostile-input bounds of archive listing (CPU of the shared milter)
    global_only_fields: ClassVar[frozenset[str]] = frozenset({
        "archive_max_depth", "archive_max_entries", "archive_max_total_bytes", "archive_max_ratio",
        "archive_time_s"})

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.action not in ACTIONS:
            raise SettingsError("action", f"must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        for i, d in enumerate(self.directions):
            if d not in ("inbound", "outbound", "local"):
                raise SettingsError(f"directions[{i}]", f"must be inbound, outbound or local, not {d!r}")
        for i, e in enumerate(self.blocked_extensions):
            if not re.fullmatch(r"[a-z0-9_-]{1,20}", e):
                raise SettingsError(f"blocked_extensions[{i}]", f"{e!r}: lower-case letters and digits, no dot")
        for i, t in enumerate(self.blocked_types):
            if not re.fullmatch(r"[a-z0-9.+-]+/([a-z0-9.+-]+|\*)", t):
                raise SettingsError(f"blocked_types[{i}]", f"{t!r} is not type/subtype or type/*")
        if self.archive_max_depth < 1 or self.archive_max_entries < 1 or self.archive_max_total_bytes < 1024:
            raise SettingsError("archive_max_depth", "archive limits must be positive")
        if self.archive_max_ratio < 2 or self.archive_time_s <= 0:
            raise SettingsError("archive_max_ratio", "ratio must be >= 2 and time > 0")
        check_reply(self.reject_code, self.reject_enhanced, self.reject_text)

    @property
    def archive_limits(self) -> ArchiveLimits:
        return ArchiveLimits(self.archive_max_depth, self.archive_max_entries, self.archive_max_total_bytes,
                             self.archive_max_ratio, time_budget_s=self.archive_time_s)


@dataclass(frozen=True, slots=True)
class _Compiled:
    extensions: frozenset[str]
    blocked: tuple[re.Pattern[str], ...]
    allowed: tuple[re.Pattern[str], ...]


_compiled_cache: dict[tuple[Any, ...], _Compiled] = {}


def _compile(s: AttachmentSettings) -> _Compiled:
    key = (s.blocked_extensions, s.blocked_name_patterns, s.allowed_name_patterns)
    c = _compiled_cache.get(key)
    if c is None:
        c = _Compiled(
            frozenset(s.blocked_extensions),
            tuple(re.compile(fnmatch.translate(p.lower())) for p in s.blocked_name_patterns),
            tuple(re.compile(fnmatch.translate(p.lower())) for p in s.allowed_name_patterns),
        )
        if len(_compiled_cache) > 256:
            _compiled_cache.clear()
        _compiled_cache[key] = c
    return c


def extensions_of(name: str) -> list[str]:
    """Extensions from last to first: ``invoice.PDF .exe.`` -> ["exe", "pdf"]. Trailing dots
    and spaces are ignored (Windows drops them)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    bits = [b.strip().lower() for b in base.rstrip(" .").split(".")]
    return [b for b in reversed(bits[1:]) if b]


def judge_name(name: str, settings: AttachmentSettings, comp: _Compiled) -> list[tuple[str, str]]:
    """(symbol, detail) pairs for one file name."""
    hits: list[tuple[str, str]] = []
    low = name.lower().strip()
    if any(p.match(low) for p in comp.allowed):
        return hits
    if BIDI_CONTROLS.search(name):
        hits.append(("ATTACHMENT_BIDI_NAME", "name contains bidirectional control characters"))
    exts = extensions_of(BIDI_CONTROLS.sub("", name))
    if exts and exts[0] in comp.extensions:
        hits.append(("ATTACHMENT_BLOCKED_EXTENSION", f".{exts[0]}"))
        if settings.block_double_extensions and len(exts) > 1 and exts[1] in DOCUMENT_EXTENSIONS:
            hits.append(("ATTACHMENT_DOUBLE_EXTENSION", f".{exts[1]}.{exts[0]}"))
    if any(p.match(low) for p in comp.blocked):
        hits.append(("ATTACHMENT_BLOCKED_NAME", "matches a blocked name pattern"))
    return hits


def judge_type(detected: str, settings: AttachmentSettings) -> list[tuple[str, str]]:
    hits: list[tuple[str, str]] = []
    if settings.block_executables and detect.is_executable(detected):
        hits.append(("ATTACHMENT_EXECUTABLE", detected))
    if settings.block_scripts and detect.is_script(detected):
        hits.append(("ATTACHMENT_SCRIPT", detected))
    for t in settings.blocked_types:
        if detected == t or (t.endswith("/*") and detected.startswith(t[:-1])):
            hits.append(("ATTACHMENT_BLOCKED_TYPE", detected))
            break
    return hits


BLOCKING = frozenset({
    "ATTACHMENT_BLOCKED_HIDDEN", "ATTACHMENT_BIDI_NAME", "ATTACHMENT_BLOCKED_EXTENSION", "ATTACHMENT_DOUBLE_EXTENSION",
    "ATTACHMENT_BLOCKED_NAME", "ATTACHMENT_EXECUTABLE", "ATTACHMENT_SCRIPT", "ATTACHMENT_BLOCKED_TYPE",
    "ATTACHMENT_MACRO", "ATTACHMENT_ENCRYPTED_ARCHIVE", "ATTACHMENT_ARCHIVE_UNSCANNABLE",
})


class AttachmentLayer(Layer[AttachmentSettings]):
    id = "attachments"
    stage = Stage.EOM
    fail_mode = FailMode.TEMPFAIL
    Settings = AttachmentSettings
    budget_s = 15.0
    title = "Attachment filter"
    description = "Attachment names, true types, archives, macros and executables"

    def check(self, ctx: MessageContext, settings: AttachmentSettings) -> LayerFindings:
        if ctx.direction.value not in settings.directions and ctx.direction is not Direction.RELAY:
            return LayerFindings({"skipped": f"direction {ctx.direction.value}"})
        comp = _compile(settings)
        view = ctx.mime
        limits = settings.archive_limits
        findings: list[dict[str, Any]] = []
        strip_paths: list[list[int]] = []
        symbols: dict[str, str] = {}
        for part in view.parts:
            hits = self._judge_part(part, settings, comp, view, limits)
            if not hits:
                continue
            for sym, detail in hits:
                symbols.setdefault(sym, f"{part.safe_name or part.path_str}: {detail}")
            blocking = [h for h in hits if h[0] in BLOCKING or
                        (h[0] == "ATTACHMENT_TYPE_MISMATCH" and settings.block_type_mismatch)]
            findings.append({
                "part": part.path_str, "name": part.safe_name, "declared": part.content_type,
                "detected": part.detected_type, "reasons": [f"{s}: {d}" for s, d in hits], "blocked": bool(blocking),
            })
            if blocking:
                strip_paths.append(list(part.path))
        hidden = self._judge_alternatives(ctx, settings, comp, limits) if view.is_ambiguous else []
        for finding, hits in hidden:
            for sym, detail in hits:
                symbols.setdefault(sym, f"{finding['name'] or finding['part']}: {detail}")
            findings.append(finding)
            if finding["blocked"]:
                symbols.setdefault("ATTACHMENT_BLOCKED_HIDDEN",
                                   f"{finding['name'] or finding['part']}: {finding['reasons'][0]}")
        blocked_any = bool(strip_paths) or any(f["blocked"] for f, _ in hidden)
        out = []
        for sym, detail in symbols.items():
            score = settings.mismatch_score if sym == "ATTACHMENT_TYPE_MISMATCH" else 0.0
            out.append(self.symbol(sym, score, detail[:200]))
        if blocked_any:
            first = next(f for f in findings if f["blocked"])
            out.append(self.symbol("ATTACHMENT_BLOCKED", settings.blocked_score,
                                   f"{first['name'] or first['part']}: {first['reasons'][0]}"[:200]))
        facts: dict[str, Any] = {
            "attachments": [{"part": p.path_str, "name": p.safe_name, "declared": p.content_type,
                             "detected": p.detected_type, "size": len(p.payload)} for p in view.attachments],
            "findings": findings,
            "blocked": blocked_any,
            "action": settings.action,
            "strip_parts": strip_paths if settings.action == "strip" else [],
        }
        return LayerFindings(facts, tuple(out))

    def _judge_alternatives(self, ctx: MessageContext, settings: AttachmentSettings, comp: _Compiled,
                            limits: ArchiveLimits) -> list[tuple[dict[str, Any], list[tuple[str, str]]]]:
        """Parts that only another reading of an ambiguous message shows: the same rules apply,
        but they cannot be stripped (there is no such part in the tree we re-serialise)."""
        from gateway_milter.mime.detect import detect_type
        from gateway_milter.mime.headers import safe_filename

        view = ctx.mime
        out = []
        for i, alt in enumerate(view.alternatives().parts):
            hits: list[tuple[str, str]] = []
            for name in alt.names:
                hits += judge_name(name, settings, comp)
            detected = detect_type(alt.payload)
            hits += judge_type(detected, settings)
            if settings.scan_archives:
                rep = view.archive_of(alt.payload, detected, safe_filename(alt.names[0]) if alt.names else "", limits)
                if rep is not None:
                    hits += self._judge_archive(rep, settings, comp)
            hits = _dedupe(hits)
            if not hits:
                continue
            blocking = [h for h in hits if h[0] in BLOCKING]
            name = safe_filename(alt.names[0]) if alt.names else ""
            out.append(({"part": f"alternative {i + 1}", "name": name, "declared": alt.declared_type,
                         "detected": detected, "reasons": [f"{s}: {d}" for s, d in hits],
                         "blocked": bool(blocking), "hidden": True}, hits))
        return out

    def _judge_part(self, part: MimePart, settings: AttachmentSettings, comp: _Compiled,
                    view: Any, limits: ArchiveLimits) -> list[tuple[str, str]]:
        hits: list[tuple[str, str]] = []
        for name in part.filenames or ((part.filename,) if part.filename else ()):
            hits += judge_name(name, settings, comp)
        if not part.payload:
            return _dedupe(hits)
        detected = part.detected_type
        exempt = bool(part.filename) and any(p.match(part.filename.lower()) for p in comp.allowed)
        type_hits = judge_type(detected, settings)
        if exempt:
            type_hits = [h for h in type_hits if h[0] == "ATTACHMENT_EXECUTABLE"]
        hits += type_hits
        if part.filename and part.extension and detect.mismatches(part.extension, detected):
            hits.append(("ATTACHMENT_TYPE_MISMATCH", f".{part.extension} is {detected}"))
        if settings.block_macros and detect.is_office(detected):
            from gateway_milter.mime.office import MacroProbeError, probe

            try:
                if probe(part.payload):
                    hits.append(("ATTACHMENT_MACRO", detected))
            except MacroProbeError as e:
                hits.append(("ATTACHMENT_MACRO", f"unreadable Office document: {e}"))
        if settings.scan_archives:
            rep = view.archive(part, limits)
            if rep is not None:
                hits += self._judge_archive(rep, settings, comp)
        return _dedupe(hits)

    def _judge_archive(self, rep: ArchiveReport, settings: AttachmentSettings, comp: _Compiled) -> list[tuple[str, str]]:
        hits: list[tuple[str, str]] = []
        if rep.encrypted and settings.block_encrypted_archives:
            hits.append(("ATTACHMENT_ENCRYPTED_ARCHIVE", rep.kind))
        if (rep.limit or rep.corrupt or rep.unsupported) and settings.block_unscannable_archives:
            hits.append(("ATTACHMENT_ARCHIVE_UNSCANNABLE", ", ".join(r for r in rep.reasons if r != "encrypted")))
        for entry in rep.entries:
            where = "/".join((*entry.chain[1:], entry.name))
            for sym, detail in judge_name(entry.name, settings, comp):
                hits.append((sym, f"in archive: {where}: {detail}"))
            for sym, detail in judge_type(entry.detected_type, settings) if entry.detected_type else []:
                hits.append((sym, f"in archive: {where}: {detail}"))
            if entry.has_macros and settings.block_macros:
                hits.append(("ATTACHMENT_MACRO", f"in archive: {where}"))
        return hits

    def policy_rules(self, settings: AttachmentSettings) -> list[PolicyRule]:
        if settings.action == "refuse":
            reply = Reply(settings.reject_code, settings.reject_enhanced, settings.reject_text)
            return [PolicyRule("blocked", Outcome.reject(reply, "attachment not allowed"), ("ATTACHMENT_BLOCKED",))]
        if settings.action == "quarantine_user":
            return [PolicyRule("blocked", Outcome.quarantine(QuarantineQueue.USER, "attachment not allowed"),
                               ("ATTACHMENT_BLOCKED",))]
        if settings.action == "quarantine_admin":
            return [PolicyRule("blocked", Outcome.quarantine(QuarantineQueue.ADMIN, "attachment not allowed"),
                               ("ATTACHMENT_BLOCKED",))]
        # strip: not a final decision, the strip transform acts on delivered mail. A blocked part
        # that only another MIME reading shows cannot be stripped: that message is held instead.
        return [PolicyRule("blocked_hidden", Outcome.quarantine(QuarantineQueue.ADMIN, "attachment hidden by MIME ambiguity"),
                           ("ATTACHMENT_BLOCKED_HIDDEN",))]


def _dedupe(hits: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(hits))
