"""``manage.py rules check``: load the SpamAssassin rule set the way the milter does and list
every rule that will NOT run, with the reason (unsupported eval function, pseudo-header,
regular expression, meta on an unsupported rule), plus the counts of rules that run."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from gateway_milter.layers.rules import RulesSettings, engine_from_settings


class Command(BaseCommand):
    help = "Check the heuristic rule set: list unsupported rules and what runs."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        p = sub.add_parser("check")
        p.add_argument("--dir", action="append", default=[], help="local rule directory (repeatable)")
        p.add_argument("--no-default", action="store_true", help="without Debian's /usr/share/spamassassin")
        p.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **o: Any) -> None:
        s = RulesSettings(rule_dirs=tuple(o["dir"]), include_default=not o["no_default"])
        eng = engine_from_settings(s)
        kinds: dict[str, int] = {}
        for r in eng.rules.values():
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        report = {
            "files": len(eng.ruleset.files),
            "running": len(eng.rules),
            "by_kind": kinds,
            "unsupported": dict(sorted(eng.unsupported.items())),
            "not_run_network": dict(sorted(eng.ruleset.skipped.items())),
            "not_run_score_zero": len(eng.disabled),
        }
        if o["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self.stdout.write(f"{report['files']} rule file(s); {report['running']} rules run "
                          f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
        self.stdout.write(f"{len(eng.unsupported)} unsupported rule(s) (never applied):")
        for name, why in report["unsupported"].items():
            self.stdout.write(f"  {name}: {why}")
        self.stdout.write(f"{len(report['not_run_network'])} network rule(s) left to the dnsbl/uribl layers; "
                          f"{report['not_run_score_zero']} rule(s) with score 0 not needed by any scored rule")
