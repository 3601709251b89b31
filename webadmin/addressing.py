"""What the admin tools take as an email address: the scan tool's sender and recipients, the
command-line tools' ``--from`` and ``--rcpt``, and an account's addresses. One rule for all:
``local@domain``, a local part of at most 64 characters and a domain of at most 253 (without a
dot too: ``postmaster@localhost``), no white space, angle brackets, quotes or control
characters, at most 254 characters in all (RFC 5321's path limit)."""

from __future__ import annotations

import re

MAILBOX = re.compile(r"[^@\s<>\"\x00-\x1f\x7f]{1,64}@[^@\s<>\"\x00-\x1f\x7f]{1,253}")


def is_mailbox(text: str) -> bool:
    return len(text) <= 254 and MAILBOX.fullmatch(text) is not None
