"""``manage.py rules check``: load the SpamAssassin rule set the way the milter does and list
every rule that will NOT run, with the reason (unsupported eval function, pseudo-header,
regular expression, meta on an unsupported rule), plus the counts of rules that run.
``manage.py rules compile``: build (or load) the Hyperscan databases for the rule set now, as
the milter otherwise does in the background on first use, and say what they cover."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from gateway_milter.antispam.sarules import RuleFileError, capture_names
from gateway_milter.layers.base import SettingsError
from gateway_milter.layers.rules import PLUGIN_RULES, RulesSettings, engine_from_settings


class Command(BaseCommand):
    help = "Check the heuristic rule set: list unsupported rules and what runs."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        p = sub.add_parser("check")
        p.add_argument("--dir", action="append", default=[], help="local rule directory (repeatable)")
        p.add_argument("--no-default", action="store_true", help="without Debian's /usr/share/spamassassin")
        p.add_argument("--sa-update", action="store_true",
                       help="the default set from sa-update's directory when it has one (rules setting sa_update)")
        p.add_argument("--json", action="store_true")
        p.add_argument("--policy", action="store_true",
                       help="the published policy's rule set (its rule_dirs, local_rules, skip_rules, ...) "
                            "instead of the options above")
        p = sub.add_parser("compile")
        p.add_argument("--policy", action="store_true", help="the published policy's rule set")
        p.add_argument("--dir", action="append", default=[], help="local rule directory (repeatable)")
        p.add_argument("--no-default", action="store_true", help="without Debian's /usr/share/spamassassin")
        p.add_argument("--sa-update", action="store_true",
                       help="the default set from sa-update's directory when it has one (rules setting sa_update)")
        p.add_argument("--wait", type=float, default=1800.0, help="seconds to wait for the build")

    def handle(self, *args: Any, **o: Any) -> None:
        try:
            if o["policy"]:
                from webadmin.services import current_snapshot

                s = current_snapshot().settings_for("rules")
            else:
                s = RulesSettings(rule_dirs=tuple(o["dir"]), include_default=not o["no_default"],
                                  sa_update=o["sa_update"])
            eng = engine_from_settings(s)
        except (SettingsError, RuleFileError) as e:  # (a --dir that does not exist or cannot be read)
            raise CommandError(str(e)) from None
        if o["action"] == "compile":
            self.compile(eng, o["wait"])
            return
        kinds: dict[str, int] = {}
        for r in eng.rules.values():
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        from gateway_milter.antispam.sarules import default_rule_dirs

        report = {
            "default_set": [str(d) for d in default_rule_dirs(s.sa_update)] if s.include_default else [],
            "files": len(eng.ruleset.files),
            "running": len(eng.rules),
            "by_kind": kinds,
            "unsupported": dict(sorted(eng.unsupported.items())),
            "unsupported_where": {n: w for n, w in sorted(getattr(eng.ruleset, "sources", {}).items())
                                  if n in eng.unsupported},
            # (the DKIM and SPF plugins' rules among them: the dkim and spf layers answer those)
            "not_run_network": {n: f"answered by the {PLUGIN_RULES[n]} layer" if n in PLUGIN_RULES else why
                                for n, why in sorted(eng.ruleset.skipped.items())},
            "not_run_score_zero": len(eng.disabled),
            # metas that run with a rule no file defines read as 0 (a typo, a plugin not loaded)
            "undefined_deps": {n: list(d) for n, d in sorted(eng.ruleset.undefined_deps.items()) if n in eng.rules},
            # SpamAssassin 4's capture rules: tag -> the rules that set it, and the rules reading tags
            "capture_tags": {t: sorted(n for n, r in eng.rules.items() if t in capture_names(r))
                             for t in sorted({t for r in eng.rules.values() for t in capture_names(r)})},
            "template_rules": sorted(n for n, r in eng.rules.items() if r.templates),
            # lines of the administrator's files whose directive is not read (a typo such as
            # "bdoy", or a SpamAssassin setting the gateway keeps elsewhere): file:line -> word
            "ignored_directives": dict(eng.ruleset.ignored),
            # score, describe and tflags lines of those files for names no rule file defines
            # (less the rules another layer answers: SPF_PASS and its kin, scored here, defined
            # by the default set)
            "unknown_names": {where: w for where, w in getattr(eng.ruleset, "unknown_names", {}).items()
                              if w.split()[-1] not in PLUGIN_RULES},
        }
        if o["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(f"default set: {', '.join(report['default_set']) or 'none'}")
        self.stdout.write(f"{report['files']} rule file(s); {report['running']} rules run "
                          f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
        self.stdout.write(f"{len(eng.unsupported)} unsupported rule(s) (never applied):")
        for name, why in report["unsupported"].items():
            where = f" ({report['unsupported_where'][name]})" if name in report["unsupported_where"] else ""
            self.stdout.write(f"  {name}{where}: {why}")
        self.stdout.write(f"{len(report['not_run_network'])} network rule(s) not run here (the dnsbl, uribl, spf "
                          "and dkim layers do those checks); "
                          f"{report['not_run_score_zero']} rule(s) with score 0 not needed by any scored rule")
        if report["undefined_deps"]:
            self.stdout.write(f"{len(report['undefined_deps'])} meta rule(s) read rules no file defines "
                              "(read as 0):")
            for name, deps in report["undefined_deps"].items():
                named = [f"{d} (answered by the {PLUGIN_RULES[d]} layer)" if d in PLUGIN_RULES else d for d in deps]
                self.stdout.write(f"  {name}: {', '.join(named)}")
        for key, what in (("ignored_directives", "not read (a typo, or a SpamAssassin setting the gateway has "
                                                 "elsewhere)"),
                          ("unknown_names", "name a rule no file defines (a typo? the rule keeps its default)")):
            lines = report[key]
            if lines:
                shown = [f"{w} ({where})" for where, w in list(lines.items())[:20]]
                more = f" and {len(lines) - len(shown)} more" if len(lines) > len(shown) else ""
                self.stdout.write(f"{len(lines)} line(s) of your rule files {what}: {', '.join(shown)}{more}")
        if report["template_rules"]:
            tags = ", ".join(f"%{{{t}}} (set by {', '.join(ns)})" for t, ns in report["capture_tags"].items())
            self.stdout.write(f"{len(report['template_rules'])} rule(s) read captured tags: {tags}")

    def compile(self, eng: Any, wait_s: float) -> None:
        if eng.hs_loader is None:
            raise CommandError("Hyperscan is not available here (the hyperscan package is missing, "
                               "or GATEWAY_RULES_HYPERSCAN=0); the rules run on their Python prefilters")
        t0 = time.monotonic()
        cached = eng.hs_loader.path.exists()
        if not cached:
            self.stdout.write(f"compiling {len(eng.hs_loader.entries)} patterns into {eng.hs_loader.path} "
                              "(about a minute for the Debian rule set) ...")
        hm = eng.hyperscan(wait_s)
        if hm is None:
            raise CommandError("the Hyperscan build did not finish (see the log); the rules run on their "
                               "Python prefilters")
        modes = list(hm.modes.values())
        scanned = len(eng.hs_rules)
        self.stdout.write(f"{'loaded' if cached else 'built'} in {time.monotonic() - t0:.1f} s: "
                          f"{modes.count('exact')} patterns exact, {modes.count('prefilter')} as prefilters, "
                          f"{modes.count('loose')} as prefilters without their $ anchors, "
                          f"{scanned - len(modes)} of {scanned} rules left to Python")
        exact = sum(1 for pf in eng.re2.values() if pf.exact)
        self.stdout.write(f"RE2 first for {len(eng.re2)} long expressions on the Python path, {exact} of them "
                          "exact (docs/decisions/0048-re2-prefilter.md)")
