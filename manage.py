#!/usr/bin/env python3
"""Bulwark's command line: ``python manage.py <command>`` (runmilter, scan, policy, quarantine, ...)."""

import os
import sys

NOT_SET_UP = ("the database has no Bulwark tables yet ({db}): run `python manage.py bootstrap` first"
              " (or `python manage.py migrate`)")


def database_not_set_up() -> str | None:
    """What to tell someone whose command failed on a database without Bulwark's tables (a
    command run before ``bootstrap``), or None when the tables are there or the database
    cannot be asked (then the original error stands)."""
    from django.db import DatabaseError, connection

    try:
        if "webadmin_publishedpolicy" in connection.introspection.table_names():
            return None
        name = connection.settings_dict.get("NAME")
        return NOT_SET_UP.format(db=f"{connection.vendor} {name}" if name else connection.vendor)
    except DatabaseError:  # (the database cannot be asked either: the original error stands)
        return None


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line
    from django.db import DatabaseError

    try:
        execute_from_command_line(sys.argv)
    except DatabaseError:
        why = database_not_set_up()
        if why is None:
            raise
        print(f"error: {why}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
