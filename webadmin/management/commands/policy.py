"""``manage.py policy export [FILE]`` / ``policy import FILE`` / ``policy publish`` / ``policy show``.

The file is the documented YAML policy document (docs/policy/file.md). Import validates the
whole file first and changes nothing on error.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandError

from gateway_milter.layers.base import SettingsError
from webadmin.services import build_policy_document, do_import_policy, do_publish_policy

HEADER = "# Bulwark policy (format 1). See docs/policy/file.md for every field.\n"


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> Any:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


class Command(BaseCommand):
    help = "Export, import or publish the whole gateway configuration as one YAML file."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        ex = sub.add_parser("export")
        ex.add_argument("file", nargs="?", default="-")
        im = sub.add_parser("import")
        im.add_argument("file")
        im.add_argument("--check", action="store_true", help="validate only, change nothing")
        sub.add_parser("publish")

    def handle(self, *args: Any, **o: Any) -> None:
        action = o["action"]
        if action == "export":
            doc = build_policy_document(include_user_data=False)
            text = HEADER + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
            if o["file"] == "-":
                self.stdout.write(text, ending="")
            else:
                with open(o["file"], "w", encoding="utf-8") as f:
                    f.write(text)
            return
        if action == "publish":
            p = do_publish_policy("cli")
            self.stdout.write(f"policy version {p.version} published")
            return
        try:
            with open(o["file"], encoding="utf-8") if o["file"] != "-" else sys.stdin as f:
                doc = yaml.safe_load(f)
        except OSError as e:
            raise CommandError(f"{o['file']}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise CommandError(f"{o['file']}: not valid YAML: {e}") from None
        except UnicodeDecodeError as e:
            raise CommandError(f"{o['file']}: not UTF-8 text (byte {e.start + 1})") from None
        try:
            if o["check"]:
                from gateway_milter.policy.snapshot import validate_document

                validate_document(doc)
                self.stdout.write("policy file is valid")
                return
            p = do_import_policy(doc, "cli")
        except SettingsError as e:
            raise CommandError(f"invalid policy, nothing changed: {e}") from None
        self.stdout.write(f"policy imported and published as version {p.version}")
