"""Heuristic rules in SpamAssassin's format (Mail::SpamAssassin::Conf), loaded natively from
Debian's ``spamassassin`` package (/usr/share/spamassassin) plus local rule directories.

Each rule that hits becomes a symbol with its SpamAssassin name and score (score set 2:
Bayes on, network tests off — our dnsbl/uribl layers do those). Unsupported rules never run
and are listed by ``manage.py rules check``. A rule set is compiled once per process (up to
four kept: rules settings may differ per domain; ``engine.MAX_ENGINES``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from gateway_milter.antispam.engine import RuleEngine, engine_for
from gateway_milter.antispam.relays import parse_network
from gateway_milter.antispam.sarules import (
    LEARN_TFLAG,
    NOT_AUTOLEARNED_TFLAGS,
    PLUGIN_NOT_LOADED,
    RULE_KINDS,
    RULE_NAME,
    RuleFileError,
    config_lines,
    load_rules,
    rule_files,
)
from gateway_milter.antispam.sarules import _strip_comment as strip_comment
from gateway_milter.antispam.saview import message_view
from gateway_milter.layers.base import BaseSettings, Layer, LayerFindings, SettingsError
from gateway_milter.verdict import FailMode, Stage

log = logging.getLogger("bulwark.rules")

if TYPE_CHECKING:
    from collections.abc import Sequence

    from gateway_milter.context import MessageContext
    from gateway_milter.pipeline.runner import LayerResult


@dataclass(frozen=True, slots=True)
class RulesSettings(BaseSettings):
    rule_dirs: tuple[str, ...] = ()  # local rule directories/files, read after the Debian set
    include_default: bool = True  # the rules of Debian's spamassassin package
    # read sa-update's rules (/var/lib/spamassassin/<version>/updates_spamassassin_org) instead
    # of the package's once sa-update has fetched them, as SpamAssassin does
    sa_update: bool = False
    score_set: int = 2  # SpamAssassin score set: 0 plain, 1 net, 2 Bayes, 3 Bayes+net
    max_size: int = 1_000_000  # larger messages are matched on their first max_size bytes
    use_bayes: bool = True  # feed the Bayes probability to the BAYES_* rules used in metas
    skip_rules: tuple[str, ...] = ()  # rules not to run (with the metas built on them), e.g. costly ones
    # The trust path (X-Spam-Relays-* pseudo-headers; SpamAssassin's trusted_networks,
    # internal_networks, msa_networks): relays in these networks (loopback always) are trusted /
    # internal; "!net" excludes. None configured: the gateway's trusted networks when
    # trust_policy_networks and the policy has some, else SpamAssassin's inference (private
    # addresses and authenticated hops trusted). docs/layers/rules.md
    trusted_networks: tuple[str, ...] = ()
    internal_networks: tuple[str, ...] = ()
    msa_networks: tuple[str, ...] = ()
    trust_policy_networks: bool = True
    # rules written in the web admin (SpamAssassin format, read after rule_dirs): kept in the
    # policy, so every node has them; written to a file the engine reads (local_rules_file)
    local_rules: str = field(default="", metadata={"multiline": True, "validate": "rules"})

    # The rule set (files of the server; each distinct set is one engine of the process-wide
    # cache of MAX_ENGINES, seconds of CPU to build) and the per-message bound.
    global_only_fields: ClassVar[frozenset[str]] = frozenset(
        {"rule_dirs", "include_default", "sa_update", "score_set", "skip_rules", "max_size", "local_rules"})

    def __post_init__(self) -> None:
        BaseSettings.__post_init__(self)
        if self.score_set not in (0, 1, 2, 3):
            raise SettingsError("score_set", "must be 0, 1, 2 or 3")
        if not 10_000 <= self.max_size <= MAX_SIZE_LIMIT:
            raise SettingsError("max_size", f"must be 10000..{MAX_SIZE_LIMIT}")
        for i, d in enumerate(self.rule_dirs):
            if not d.startswith("/") or any(c in d for c in "\r\n\0"):
                raise SettingsError(f"rule_dirs[{i}]", f"{d!r} is not an absolute path")
        try:
            size = len(self.local_rules.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError as e:  # a lone surrogate (JSON's \ud800): no file can hold it
            raise SettingsError("local_rules", f"character {e.start + 1} is not text (a lone surrogate)") from None
        if size > MAX_LOCAL_RULES:
            raise SettingsError("local_rules", f"more than {MAX_LOCAL_RULES // 1000} KB")
        for i, name in enumerate(self.skip_rules):
            if not RULE_NAME.match(name):
                raise SettingsError(f"skip_rules[{i}]", f"{name!r} is not a rule name (letters, digits and _)")
        for name in ("trusted_networks", "internal_networks", "msa_networks"):
            for i, net in enumerate(getattr(self, name)):
                try:
                    parse_network(str(net).strip().lstrip("!"))
                except ValueError:
                    raise SettingsError(f"{name}[{i}]", f"{net!r} is not an IP network") from None

    def check_at_save(self) -> list[str]:
        """The rule files exist, are readable and read as SpamAssassin configuration (a path
        the milter cannot read makes the layer fail, and its fail mode defers every message of
        the scope); a skipped rule no file defines is a warning (a rule file update may drop
        or bring back a name, so it is not refused)."""
        from gateway_milter.antispam.sarules import default_rule_dirs

        warnings, names = check_rule_paths(self.rule_dirs, self.score_set)
        if self.include_default and (self.skip_rules or self.local_rules.strip()):
            names |= rule_names(default_rule_dirs(self.sa_update))
        if self.local_rules.strip():
            defined, more = check_local_rules(self.local_rules, self.score_set, set(names))
            names |= defined
            warnings += more
        if self.skip_rules:
            unknown = [n for n in self.skip_rules if n not in names]
            if unknown:
                warnings.append(f"skip_rules: no rule file defines {', '.join(unknown)} (kept, in case a rule "
                                "update brings them back)")
        return warnings


MAX_SIZE_LIMIT = 20_000_000  # bytes the rules may read of one message (hostile-input bound)
MAX_LOCAL_RULES = 200_000  # bytes of rules written in the web admin
# Save-time check of local rule files (check_rule_paths): at most this much text is read, and
# the rule definitions are parsed (regular expressions and all, about 3 ms a rule) only up to
# PARSE_AT_SAVE rules; a larger set is checked line by line only, and `manage.py rules check`
# lists what it cannot run.
MAX_RULE_BYTES = 20_000_000
PARSE_AT_SAVE = 300
_DIRECTIVE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _rule_files(paths: Sequence[str | Path], field: str | None, start: int = 0) -> list[Path]:
    """The files the engine reads for ``paths`` (``*.cf`` of a directory, a file itself);
    with ``field``, a path that cannot be read is a SettingsError naming it (``field[i]``,
    counted from ``start``)."""
    out: list[Path] = []
    for i, d in enumerate(paths, start):
        p = Path(d)
        where = f"{field}[{i}]" if field else str(p)
        try:
            if p.is_dir():
                if not os.access(p, os.R_OK | os.X_OK):
                    raise SettingsError(where, f"{d}: the directory cannot be read by the gateway")
                files = rule_files(p)
            elif p.is_file():
                files = [p]
            elif p.exists():
                raise SettingsError(where, f"{d}: neither a directory nor a regular file")
            else:
                raise SettingsError(where, f"{d}: no such file or directory")
        except OSError as e:
            raise SettingsError(where, f"{d}: {e.strerror or e}") from None
        for f in files:
            if not os.access(f, os.R_OK):
                raise SettingsError(where, f"{f}: the file cannot be read by the gateway")
        out += files
    return out


def _scan(text: str) -> tuple[list[int], dict[str, int]]:
    """The numbers of the lines that are not SpamAssassin directives, and the rule names defined
    with the line of each one's first definition."""
    bad: list[int] = []
    names: dict[str, int] = {}
    for n, raw in enumerate(config_lines(text), 1):
        line = strip_comment(raw).strip()
        if not line:
            continue
        word, _, rest = line.replace("\t", " ").partition(" ")
        if not _DIRECTIVE.fullmatch(word):
            bad.append(n)
        elif word.lower() in RULE_KINDS:
            names.setdefault(rest.strip().split(" ", 1)[0], n)
    return bad, names


def rule_names(paths: Sequence[str | Path]) -> set[str]:
    """The names of the rules ``paths`` define (read as text only: fast enough for a save)."""
    names: set[str] = set()
    for f in _rule_files(paths, None):
        try:
            names.update(_scan(f.read_text("utf-8", "surrogateescape"))[1])
        except OSError:
            continue
    return names


def known_rule_names(settings: RulesSettings) -> set[str]:
    """The names the settings' rule files define besides ``local_rules`` (rule_dirs, the default
    set): what a meta of the web admin's rules may read. A path that cannot be read adds none."""
    from gateway_milter.antispam.sarules import default_rule_dirs

    names = rule_names(default_rule_dirs(settings.sa_update)) if settings.include_default else set()
    for d in settings.rule_dirs:
        try:
            names |= rule_names([d])
        except SettingsError:
            continue
    return names


def check_rule_paths(paths: Sequence[str], score_set: int = 2) -> tuple[list[str], set[str]]:
    """Check local rule paths as the engine will read them: each exists and can be read, every
    line is a SpamAssassin directive (not e.g. /etc/passwd), and, for a set of at most
    PARSE_AT_SAVE rules, the definitions parse. Raises SettingsError (``rule_dirs[i]``);
    returns warnings and the rule names defined."""
    warnings: list[str] = []
    names: set[str] = set()
    total = 0
    for i, d in enumerate(paths):
        where = f"rule_dirs[{i}]"
        files = _rule_files([d], "rule_dirs", i)
        for f in files:
            total += f.stat().st_size
            if total > MAX_RULE_BYTES:
                raise SettingsError(where, f"more than {MAX_RULE_BYTES // 1_000_000} MB of rule files")
            try:
                text = f.read_text("utf-8", "surrogateescape")
            except OSError as e:
                raise SettingsError(where, f"{f}: {e.strerror or e}") from None
            bad, defined = _scan(text)
            if bad:
                n = bad[0]
                more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
                # the line itself is not quoted: the file may be anyone's (/etc/shadow)
                raise SettingsError(where, f"{f} line {n} is not a SpamAssassin directive{more}")
            names.update(defined)
        if Path(d).is_dir() and not files:
            warnings.append(f"rule_dirs[{i}]: {d} has no *.cf file yet")
    if paths and len(names) <= PARSE_AT_SAVE:
        try:
            rs = load_rules([Path(d) for d in paths], score_set)
        except RuleFileError as e:
            raise SettingsError("rule_dirs", str(e)) from None
        if rs.unsupported:
            listed = ", ".join(sorted(rs.unsupported)[:5])
            n = len(rs.unsupported) - len(rs.line_errors)
            what = " and ".join(([f"{n} rule(s) will not run"] if n else [])
                                + ([f"{len(rs.line_errors)} line(s) cannot be read"] if rs.line_errors else []))
            warnings.append(f"rule_dirs: {what} ({listed}"
                            f"{', ...' if len(rs.unsupported) > 5 else ''}; see manage.py rules check)")
    elif paths:
        warnings.append(f"rule_dirs: {len(names)} rules read but not compiled at save; "
                        "manage.py rules check lists any that will not run")
    return warnings, names


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One finding of :func:`local_rules_problems`: an error (the text would be refused) or a
    warning (a line the rules layer ignores, a meta reading an undefined rule), with its line
    (1-based)."""

    line: int
    message: str
    severity: str = "error"  # or "warning"
    word: str = ""  # an ignored line's directive

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "message": self.message, "severity": self.severity}


def local_rules_problems(text: str, score_set: int = 2,
                         known: set[str] | None = None) -> tuple[set[str], list[RuleProblem]]:
    """Every problem of the web admin's rules, as the engine will read them, in line order: a
    line that is not a SpamAssassin directive, a file the parser refuses, a rule of the text
    that would not run (its pattern does not compile, an unknown eval function, a broken meta;
    the line of its first definition) are errors; a directive the rules layer does not read
    (SpamAssassin's ``required_score`` ...) is a warning, and so is a meta of the text reading a
    rule neither the text nor ``known`` (the other rule files' names; default: the default
    set's) defines (it runs with that rule read as 0). Returns the rule names defined and
    the problems. The editor asks for them as the administrator types (``/api/rules/validate/``);
    saving refuses a text with an error (:func:`check_local_rules`)."""
    import tempfile

    from gateway_milter.antispam.sarules import known_directive

    bad, names = _scan(text)
    lines = config_lines(text)
    problems = [RuleProblem(n, f"not a SpamAssassin directive: {lines[n - 1].strip()[:80]!r}") for n in bad]
    skip = set(bad)
    for n, raw in enumerate(lines, 1):
        word = strip_comment(raw).strip().replace("\t", " ").partition(" ")[0]
        if word and n not in skip and not known_directive(word.lower()):
            problems.append(RuleProblem(n, f"{word[:40]}: not read by the rules layer, ignored", "warning", word[:40]))
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "local.cf"
        f.write_text(text, "utf-8", "surrogateescape")
        try:
            rs = load_rules([f], score_set)
        except RuleFileError as e:
            problems.append(RuleProblem(1, str(e).replace(str(f), "the rules")))
        else:
            problems += [RuleProblem(names[n], f"{n} would not run: {rs.unsupported[n]}")
                         for n in rs.unsupported if n in names]
            # lines no rule owns: an unreadable score line or if condition, a bad rule name, include
            for key, where in rs.line_errors.items():
                line = int(where.rpartition(":")[2])
                # (a rule in a plugin's block, as SpamAssassin's own local.cf has them: said, and saved)
                problems.append(RuleProblem(line, rs.unsupported[key],
                                            "warning" if PLUGIN_NOT_LOADED in rs.unsupported[key] else "error"))
            if rs.undefined_deps:
                if known is None:
                    from gateway_milter.antispam.sarules import default_rule_dirs

                    known = rule_names(default_rule_dirs())
                for meta, deps in rs.undefined_deps.items():
                    unknown = [d for d in deps if d not in known and d not in PLUGIN_RULES]
                    if meta in names and unknown:
                        problems.append(RuleProblem(names[meta], f"{meta} reads {', '.join(unknown[:5])}, which no "
                                                    "rule defines (read as 0)", "warning"))
    problems.sort(key=lambda p: p.line)
    return set(names), problems


def check_local_rules(text: str, score_set: int = 2, known: set[str] | None = None) -> tuple[set[str], list[str]]:
    """Check the web admin's rules when they are saved (:func:`local_rules_problems`): an
    error is a SettingsError (``local_rules``) naming the first one's line; returns the rule
    names defined and the warnings, in one line."""
    names, problems = local_rules_problems(text, score_set, known)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SettingsError("local_rules", f"line {errors[0].line}: {errors[0].message}{more}")
    ignored = [f"line {p.line} ({p.word})" for p in problems if p.severity == "warning" and p.word]
    warnings = [f"local_rules: not read by the rules layer, ignored: {', '.join(ignored[:5])}"
                f"{' and more' if len(ignored) > 5 else ''}"] if ignored else []
    warnings += [f"local_rules: line {p.line}: {p.message}" for p in problems if p.severity == "warning" and not p.word]
    return names, warnings


_local_file: dict[str, Path] = {}  # the text last written -> its file (one per process)
_local_lock = threading.Lock()
_local_failed = [-1e9]  # monotonic time of the last write that failed
LOCAL_RETRY_S = 30.0


def local_rules_file(text: str) -> Path | None:
    """The file the engine reads the web admin's rules from: ``rules-local/local.cf`` under the
    data directory, rewritten (atomically) when the policy's text differs from what it holds.
    The path never changes, so that a new text is a changed file to the engine: the rule set
    is built again in the background while the old one answers (engine_for)."""
    from gateway_milter import envconfig

    got = _local_file.get(text)
    if got is not None:
        return got
    path = envconfig.data_dir() / "rules-local" / "local.cf"
    if time.monotonic() - _local_failed[0] < LOCAL_RETRY_S:  # (a write failed just now)
        return path if path.exists() else None
    with _local_lock:
        data = text.encode("utf-8", "surrogateescape")
        try:
            same = path.read_bytes() == data
        except OSError:
            same = False
        if not same:
            tmp = path.with_name(f".local.cf.{os.getpid()}.{threading.get_ident()}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_bytes(data)
                os.replace(tmp, path)
            except OSError as e:
                # (a full or read-only disk): the rule set stays as it was, with the local rules
                # last written, rather than the layer failing, which tempfails every message;
                # tried again after a while
                tmp.unlink(missing_ok=True)
                now = time.monotonic()
                if now - _local_failed[0] >= LOCAL_RETRY_S:
                    log.error("rules: the local rules cannot be written to %s (%s); the rules written"
                              " before stay in use", path, e)
                _local_failed[0] = now
                return path if path.exists() else None
        _local_file.clear()
        _local_file[text] = path
        return path


def engine_from_settings(settings: RulesSettings) -> RuleEngine:
    return engine_for(*rule_set_of(settings))


def rule_set_of(settings: RulesSettings) -> tuple[tuple[str, ...], int, bool, tuple[str, ...], bool]:
    """What names a rule set (one engine): settings that differ only elsewhere share it."""
    dirs = tuple(settings.rule_dirs)
    if settings.local_rules:  # (not stripped: this runs for every message)
        local = local_rules_file(settings.local_rules)
        if local is not None:
            dirs += (str(local),)
    return (dirs, settings.score_set, settings.include_default, tuple(settings.skip_rules),
            settings.include_default and settings.sa_update)


_warm_lock = threading.Lock()
_building: set[tuple[object, ...]] = set()  # rule sets being built in the background


def warm_up(settings: RulesSettings | None = None, wait: bool = False) -> None:
    """Build the rule engine ahead of the first message (a few seconds for the Debian set).
    The milter calls this at start-up; ``prefetch`` calls it too."""
    s = settings or RulesSettings()
    if wait:
        engine_from_settings(s)
    else:
        rule_set_ready(s)


def rule_set_ready(settings: RulesSettings) -> bool:
    """Whether this process has built the settings' rule set (an earlier version of it counts:
    it answers while the new one builds); when not, its build is started in the background,
    once at a time (again if an earlier one finished and the engine was since let go)."""
    from gateway_milter.antispam.engine import built_engine

    key = rule_set_of(settings)
    if built_engine(*key) is not None:
        return True
    with _warm_lock:
        if key in _building:
            return False
        _building.add(key)

    def build() -> None:
        try:
            engine_from_settings(settings)
        except Exception:  # logged; the web admin keeps saying it is being built, the log says why
            log.exception("rules: building the rule set failed")
        finally:
            with _warm_lock:
                _building.discard(key)

    threading.Thread(target=build, daemon=True, name="rules-warm-up").start()
    return False


# SpamAssassin's SPF and DKIM plugins define rules that Debian's metas read (FROM_BANK_NOAUTH:
# a bank's From with neither SPF_PASS nor DKIM_VALID_AU; FROM_GOV_DKIM_AU; FORGED_SPF_HELO):
# here the spf and dkim layers check those, and their results answer the plugins' rules (read
# as 0 otherwise, so every bank's mail hit FROM_BANK_NOAUTH). Names as the plugins give them.
_SPF_NAMES = {"pass": "PASS", "fail": "FAIL", "softfail": "SOFTFAIL", "neutral": "NEUTRAL", "none": "NONE",
              "permerror": "PERMERROR", "temperror": "TEMPERROR"}
# (SpamAssassin's error results are T_ rules: T_SPF_PERMERROR, T_SPF_HELO_TEMPERROR)
_SPF_RULES = {(fact, result): ("T_" if name.endswith("ERROR") else "") + prefix + name
              for fact, prefix in (("result", "SPF_"), ("helo_result", "SPF_HELO_")) for result, name in _SPF_NAMES.items()}
# each plugin rule answered here -> the layer that answers it (``rules check`` names it)
# (DKIM_INVALID is the DKIM plugin's meta, DKIM_SIGNED && !DKIM_VALID: the dkim layer scores it
# itself, so the rules layer does not name it again)
PLUGIN_RULES = {**{n: "spf" for n in _SPF_RULES.values()},
                **{n: "dkim" for n in ("DKIM_SIGNED", "DKIM_VALID", "DKIM_VALID_AU", "DKIM_VALID_EF", "DKIM_INVALID")},
                "__RCVD_IN_DNSWL": "dnsbl"}
# SpamAssassin rules of the same name and fact as a layer's own symbol: where that layer ran,
# the rule still counts in the metas that read it but is neither named nor scored a second
# time (RDNS_NONE: the first untrusted relay, read from the Received field the MTA adds, has
# no reverse name; the rdns layer looks the SMTP client's PTR record up itself)
SAME_FACT = {"RDNS_NONE": "rdns"}


def _ran(ctx: MessageContext, lid: str) -> LayerResult | None:
    """A layer's result where it ran before this one and judged the message (not off, not
    failed, not exempting it)."""
    res = ctx.runner.peek(lid) if ctx.runner is not None else None
    if res is None or res.error or res.skipped or res.fact("exempt"):
        return None
    return res


def plugin_inputs(ctx: MessageContext) -> tuple[dict[str, int], dict[str, object]]:
    """What the SPF, DKIM and DNSWL rules read, from the spf, dkim and dnsbl layers' results
    where those layers ran before this one (the layer order runs them first; a layer that is
    off, exempted the message or failed answers none). Only results already at hand: the rules
    layer never runs a DNS check itself.

    Two parts: the plugins' rules' values (``SPF_PASS``, ``SPF_HELO_FAIL``, ``DKIM_VALID_AU``,
    ``__RCVD_IN_DNSWL``, ...: the engine's ``known``), and for the rules that read more than a
    yes or no (saeval ``check_dkim_dependable``, the welcome-lists of
    :mod:`gateway_milter.antispam.authlists`) the engine's extras: ``dkim_checked``;
    ``dkim_signatures``, each signature's signing domain (that of its ``i=`` identity, else its
    ``d=``: the plugin's SDID) and whether it is valid; ``dkim_tempfailed``, the signing domains
    of signatures whose key could not be had (DNS timeout or failure); ``spf_pass_sender``, the envelope
    sender SPF passed."""
    known: dict[str, int] = {}
    extras: dict[str, object] = {}
    sender = ctx.mail_from.strip().strip("<>").lower()
    spf = _ran(ctx, "spf")
    if spf is not None:
        for fact in ("result", "helo_result"):
            name = _SPF_RULES.get((fact, str(spf.fact(fact) or "")))
            if name:
                known[name] = 1
        if spf.fact("identity") == "mailfrom" and spf.fact("result") == "pass" and sender:
            extras["spf_pass_sender"] = sender
    dnsbl = _ran(ctx, "dnsbl")
    if dnsbl is not None:
        # the client on a DNS allowlist (a zone with a negative weight, as DNSWL is configured):
        # SpamAssassin's DNSWL rules' sub-rule, which KHOP_HELO_FCRDNS and FSL_BULK_SIG read
        known["__RCVD_IN_DNSWL"] = int(any(s.score < 0 for s in dnsbl.symbols))
    dkim = _ran(ctx, "dkim")
    if dkim is not None:
        sigs = []
        tempfailed = []
        for sig in dkim.fact("signatures") or ():
            if not sig.get("s"):  # (a signature without a selector is skipped there too)
                continue
            sdid = (str(sig.get("i") or "").rpartition("@")[2] or str(sig.get("d") or "")).lower().rstrip(".")
            if sdid:
                sigs.append((sdid, sig.get("result") == "pass"))
                if sig.get("result") == "temperror":  # (its key lookup timed out or failed)
                    tempfailed.append(sdid)
        extras["dkim_checked"] = True
        extras["dkim_signatures"] = tuple(sigs)
        extras["dkim_tempfailed"] = tuple(tempfailed)
        valid = {sdid for sdid, ok in sigs if ok}
        known["DKIM_SIGNED"] = int(bool(dkim.fact("signatures")))
        known["DKIM_VALID"] = int(bool(valid))
        if valid:  # (the plugin compares the SDID with the author's and envelope's domains)
            from gateway_milter.layers.dmarc import header_from_domain

            author, _problem = header_from_domain(ctx)
            known["DKIM_VALID_AU"] = int(author in valid)
            envelope = sender.rpartition("@")[2].rstrip(".")
            known["DKIM_VALID_EF"] = int(bool(envelope) and envelope in valid)
    return known, extras


class HeuristicRulesLayer(Layer[RulesSettings]):
    id = "rules"
    stage = Stage.EOM
    # A crash here is a bug or hostile input we did not bound: tempfail rather than "clean".
    fail_mode = FailMode.TEMPFAIL
    Settings = RulesSettings
    budget_s = 10.0
    title = "Heuristic rules"
    description = "SpamAssassin-format heuristic rules (header, body, uri, meta, ...)"

    def prefetch(self, ctx: MessageContext, settings: RulesSettings) -> None:
        """Compile the rule set in the background at connect (first message of a process)."""
        warm_up(settings)

    def check(self, ctx: MessageContext, settings: RulesSettings) -> LayerFindings:
        engine = engine_from_settings(settings)
        view = message_view(ctx)
        extra: dict[str, object] = {}
        if settings.use_bayes:
            from gateway_milter import layers

            if "bayes" in layers.available():
                p = ctx.layer("bayes").fact("probability")
                if isinstance(p, float):
                    extra["bayes_probability"] = p
        known, auth = plugin_inputs(ctx)
        extra.update(auth)
        res = engine.run(view, extra, known=known)
        hits, score = res.hits, res.score
        # (named by the layer that answers them: always the plugins' rules, the others where it ran)
        elsewhere = {h.name for h in hits if h.name in PLUGIN_RULES
                     or (h.name in SAME_FACT and _ran(ctx, SAME_FACT[h.name]) is not None)}
        if elsewhere:
            score -= sum(h.score * h.times for h in hits if h.name in elsewhere)
            hits = [h for h in hits if h.name not in elsewhere]
        # a rule with tflags multiple is a symbol per hit, as SpamAssassin adds its score and names
        # it at each hit: the scoring layer's fitted scores and autolearn count it per hit too
        symbols = tuple(self.symbol(h.name, h.score, h.describe) for h in hits for _ in range(h.times))
        facts: dict[str, object] = {"score": round(score, 3), "hits": [h.name for h in hits], "ms": round(res.ms, 2)}
        # For Bayes autolearn, read by the scoring layer from the rule set that ran (so that it
        # never looks up, or builds, a rule set itself): the hits whose points autolearn leaves
        # out (tflags noautolearn or userconf, as SpamAssassin's _get_autolearn_points), and
        # where it counts the others' points for its header and body minimums: name -> (header,
        # body) weights, a meta's split by its sub-rules (sarules.autolearn_areas, computed with
        # the rule set; a hit in neither counts for neither)
        table = engine.autolearn_areas
        areas: dict[str, tuple[int, int]] = {}
        quiet: list[str] = []
        for h in hits:
            a = table.get(h.name)
            if a is not None:  # (never a rule of the flags below)
                areas[h.name] = a
            elif (r := engine.rules.get(h.name)) is not None and (r.tflags & NOT_AUTOLEARNED_TFLAGS
                                                                  or LEARN_TFLAG in r.tflags):
                # (a learn rule's points are the learner's own, as Bayes's are: SpamAssassin's
                # _get_autolearn_points keeps them out of the score autolearn judges by)
                quiet.append(h.name)
        if quiet:
            facts["not_autolearned"] = quiet
        if areas:
            facts["autolearn_areas"] = areas
        if engine.autolearn_force:
            forced = [h.name for h in hits if h.name in engine.autolearn_force]
            if forced:
                facts["autolearn_force"] = forced
        if engine.local_scores:
            # hits whose score a local rule file sets: the scoring layer counts that score, not
            # the fitted one (an administrator's "score RULE 0" takes the rule's points away)
            own = [h.name for h in hits if h.name in engine.local_scores]
            if own:
                facts["local_scored"] = own
        if "GTUBE" not in engine.rules and "GTUBE" not in engine.unsupported and "GTUBE" not in engine.disabled:
            # a rule set of the administrator's own without SpamAssassin's GTUBE rule: the
            # scoring layer looks for the test string itself (in the decoded body too)
            facts["no_gtube_rule"] = True
        return LayerFindings(facts, symbols)
