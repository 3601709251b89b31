"""The envelope arguments of the command-line tools that run a message through the gateway
(``manage.py scan``, ``manage.py sieve test``): checked, so that a typo is an error naming the
argument instead of a run with a client address or recipient no SMTP session could have."""

from __future__ import annotations

import ipaddress

from django.core.management.base import CommandError

from webadmin.addressing import is_mailbox


def envelope_args(ip: str | None, sender: str | None, rcpts: list[str]) -> tuple[str | None, str | None, list[str]]:
    """``--ip``, ``--from`` and ``--rcpt`` checked and normalised: the IP address in its usual
    form, angle brackets taken off (``--from '<>'`` or ``''``: the null sender). CommandError
    naming the first bad one."""
    if ip is not None:
        try:
            ip = str(ipaddress.ip_address(ip.strip()))
        except ValueError:
            raise CommandError(f"--ip {ip!r} is not an IPv4 or IPv6 address") from None
    if sender is not None:
        sender = sender.strip().removeprefix("<").removesuffix(">")
    rcpts = [r.strip().removeprefix("<").removesuffix(">") for r in rcpts]
    for name, values in (("--from", [sender] if sender else []), ("--rcpt", rcpts)):
        bad = [v for v in values if not is_mailbox(v)]
        if bad:
            raise CommandError(f"{name} {bad[0]!r} is not an email address")
    return ip, sender, rcpts
