"""``manage.py sieve check SCRIPT`` and ``manage.py sieve test SCRIPT MESSAGE`` (docs/policy/sieve.md).

``check`` compiles and prints every error as ``SCRIPT:line:column: message`` (exit 1 on error).
``test`` runs the script on one .eml file and prints the actions one per line, or with
``--json`` one object ``{"actions": [...], "implicit_keep": bool, "error": null|"text"}``.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from gateway_milter.sieve import cli
from webadmin.cliargs import envelope_args


class Command(BaseCommand):
    help = "Compile a Sieve script, or run it on a message file and print its actions."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        ck = sub.add_parser("check", help="compile SCRIPT and print its errors")
        ck.add_argument("script")
        ts = sub.add_parser("test", help="run SCRIPT on MESSAGE (.eml) and print the actions")
        ts.add_argument("script")
        ts.add_argument("message")
        ts.add_argument("--from", dest="mail_from", default="", help="envelope sender")
        ts.add_argument("--rcpt", action="append", default=[], help="envelope recipient (repeatable)")
        ts.add_argument("--ip", default=None, help="client IP address")
        ts.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            if opts["action"] == "check":
                rc = cli.check(opts["script"], self.stdout)
            else:
                ip, mail_from, rcpt = envelope_args(opts["ip"], opts["mail_from"], opts["rcpt"])
                rc = cli.test(opts["script"], opts["message"], self.stdout, mail_from=mail_from or "",
                              rcpt=rcpt, ip=ip, as_json=opts["json"])
        except OSError as e:
            raise CommandError(str(e)) from None
        if rc:
            sys.exit(rc)
