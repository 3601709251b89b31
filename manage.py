#!/usr/bin/env python3
"""Bulwark's command line: ``python manage.py <command>`` (runmilter, scan, policy, quarantine, ...)."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
