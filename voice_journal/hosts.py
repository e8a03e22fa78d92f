"""Where a URL points: this machine, or another one (what leaves the device, and what does not)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_this_machine(url: str) -> bool:
    """Whether ``url`` (or a bare host) names this machine: localhost, a loopback or unspecified address.

    >>> [is_this_machine(u) for u in ("http://127.0.0.1:11434", "[::1]:10300", "127.example.com", "gpu-box")]
    [True, True, False, False]
    """
    try:
        name = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    except ValueError:
        return False
    name = name.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(name.split("%")[0])  # fe80::1%eth0: the zone is not part of the address
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified
