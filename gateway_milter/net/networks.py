"""Client networks: an address masked to the prefix a layer keys on (greylisting's triplets,
the Bayes sender history's network)."""

from __future__ import annotations

import ipaddress


def client_network(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, v4: int, v6: int) -> str:
    """``ip`` masked to ``v4`` (IPv4) or ``v6`` (IPv6) bits, e.g. ``198.51.0.0/16``; "none"
    without an address."""
    if ip is None:
        return "none"
    return str(ipaddress.ip_network(f"{ip}/{v4 if ip.version == 4 else v6}", strict=False))


def relay_network(text: str, v4: int, v6: int) -> str:
    """:func:`client_network` of an address as a Received header gives it (``[1.2.3.4]``,
    ``IPv6:2001:db8::1``); "?" when it is not an address."""
    try:
        ip = ipaddress.ip_address(text.strip("[]").removeprefix("IPv6:").removeprefix("ipv6:"))
    except ValueError:
        return "?"
    return client_network(ip, v4, v6)
