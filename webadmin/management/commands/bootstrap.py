"""``manage.py bootstrap``: first-run setup for a new installation (idempotent).

Migrates the database, creates the ``admin`` superuser with a random password (written to
GATEWAY_DATA_DIR/admin-password, mode 0600) and, when no policy was ever published, imports the
starter policy (docs/policy/starter.yaml).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from gateway_milter.layers.base import SettingsError
from webadmin.models import PublishedPolicy
from webadmin.services import do_import_policy

STARTER = Path(settings.BASE_DIR) / "docs" / "policy" / "starter.yaml"


class Command(BaseCommand):
    help = "Create the database, the admin account and the starter policy (idempotent)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--domain", action="append", default=[], help="local domain (repeatable)")
        parser.add_argument("--no-antivirus", action="store_true",
                            help="start with the antivirus layer off (no clamd signature database yet)")

    def handle(self, *args: Any, **o: Any) -> None:
        call_command("migrate", verbosity=0)
        user_model = get_user_model()
        pw_file = settings.GATEWAY.data_dir / "admin-password"
        if not user_model.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            user_model.objects.create_superuser("admin", "postmaster@localhost", password)
            pw_file.write_text(password + "\n")
            pw_file.chmod(0o600)
        if not PublishedPolicy.objects.exists():
            doc = yaml.safe_load(STARTER.read_text())
            if o["domain"]:
                doc["domains"] = [{"name": d} for d in o["domain"]]
            if o["no_antivirus"]:
                doc.setdefault("settings", {})["antivirus"] = {"mode": "off"}
            try:
                do_import_policy(doc, "bootstrap")
            except SettingsError as e:  # (a --domain that is no domain name)
                raise CommandError(f"nothing imported: {e}") from None
        password = pw_file.read_text().strip() if pw_file.exists() else "(unchanged)"
        self.stdout.write(f"admin login: admin / {password}")
