"""``manage.py dkim generate DOMAIN [--selector S] [--algorithm rsa-sha256|ed25519-sha256] [--bits N]``
``manage.py dkim rotate DOMAIN [--activate]`` / ``dkim activate DOMAIN SELECTOR`` / ``dkim show [DOMAIN]``

DKIM signing keys live under ``GATEWAY_DATA_DIR/dkim/<domain>/`` (private keys mode 0600);
each command prints the DNS TXT record to publish, as a zone-file line ready to copy.
Rotation: ``rotate`` creates a fresh key under the other selector of the pair
(bulwark1/bulwark2) without using it; publish the record, wait for the TTL, then
``activate`` (or ``rotate --activate`` when DNS is already served). See docs/layers/dkim.md.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from gateway_milter.auth.keystore import KeyStore, KeyStoreError, zone_lines


class Command(BaseCommand):
    help = "Generate, rotate and show DKIM signing keys and their DNS records."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        g = sub.add_parser("generate", help="create a key for DOMAIN (the first key becomes active)")
        g.add_argument("domain")
        g.add_argument("--selector", default="bulwark1")
        g.add_argument("--algorithm", default="rsa-sha256", choices=["rsa-sha256", "ed25519-sha256"])
        g.add_argument("--bits", type=int, default=2048)
        r = sub.add_parser("rotate", help="new key under the inactive selector of the pair")
        r.add_argument("domain")
        r.add_argument("--algorithm", default="rsa-sha256", choices=["rsa-sha256", "ed25519-sha256"])
        r.add_argument("--bits", type=int, default=2048)
        r.add_argument("--activate", action="store_true", help="sign with the new key at once")
        a = sub.add_parser("activate", help="sign with SELECTOR from now on")
        a.add_argument("domain")
        a.add_argument("selector")
        s = sub.add_parser("show", help="list keys and their DNS records")
        s.add_argument("domain", nargs="?")
        s.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        ks = KeyStore()
        try:
            action = opts["action"]
            if action == "generate":
                record = ks.generate(opts["domain"], opts["selector"], opts["algorithm"], opts["bits"])
                self._print_record(opts["domain"], opts["selector"], record)
            elif action == "rotate":
                sel, record = ks.rotate(opts["domain"], opts["algorithm"], opts["bits"])
                if opts["activate"]:
                    ks.activate(opts["domain"], sel)
                self._print_record(opts["domain"], sel, record)
                state = "active now" if opts["activate"] else f"publish it, then: manage.py dkim activate {opts['domain']} {sel}"
                self.stdout.write(f"; {state}\n")
            elif action == "activate":
                ks.activate(opts["domain"], opts["selector"])
                self.stdout.write(f"{opts['domain']}: signing with {opts['selector']}\n")
            else:
                self._show(ks, opts.get("domain"), opts.get("json", False))
        except KeyStoreError as e:
            raise CommandError(str(e)) from None

    def _print_record(self, domain: str, selector: str, record: str) -> None:
        self.stdout.write(zone_lines(domain.lower().rstrip("."), selector, record) + "\n")

    def _show(self, ks: KeyStore, domain: str | None, as_json: bool) -> None:
        out = []
        for d in [domain.lower().rstrip(".")] if domain else ks.domains():
            active = ks.active_selector(d)
            for sel in ks.selectors(d):
                out.append({"domain": d, "selector": sel, "active": sel == active, "record": ks.dns_record(d, sel)})
        if as_json:
            for item in out:
                self.stdout.write(json.dumps(item) + "\n")
            return
        if not out:
            self.stdout.write("no DKIM keys\n")
        for item in out:
            mark = " (active)" if item["active"] else ""
            self.stdout.write(f"; {item['selector']}._domainkey.{item['domain']}{mark}\n")
            self.stdout.write(zone_lines(item["domain"], item["selector"], item["record"]) + "\n")
