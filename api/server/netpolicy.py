"""Where webhooks may go: public addresses only, unless an operator allows a network.

A target is checked when it is registered and again before every delivery, after DNS
resolution; the delivery then connects to the address that was checked (the name goes in
`Host` and TLS SNI), so a name that resolves elsewhere the second time (DNS rebinding)
gains nothing. Refused: loopback, private, link-local (cloud metadata at 169.254.169.254),
shared, multicast, reserved and unspecified addresses, in any spelling (`0x7f000001`,
`2130706433`, `127.1`, `[::ffff:127.0.0.1]`), and URLs with user information.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_NUMERIC_V4 = re.compile(r"[0-9a-fA-Fx.]+")


class TargetRefused(ValueError):
    """Why a webhook target is not allowed."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (a name, or an IP literal without brackets)
    port: int
    path: str  # path and query


def parse(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("only http and https targets are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise TargetRefused("a target URL may not carry user information")
    host = parts.hostname
    if not host:
        raise TargetRefused("the target URL has no host")
    try:
        port = parts.port
    except ValueError:
        raise TargetRefused("the target URL has an invalid port") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    elif not 0 < port < 65536:
        raise TargetRefused("the target URL has an invalid port")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, host.rstrip("."), port, path)


def literal(host: str) -> IP | None:
    """The address a host literally is, in any spelling a resolver would accept."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_V4.fullmatch(host) and not host.replace(".", "").isalpha():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise TargetRefused(f"'{host}' is neither a name nor an address") from None
    return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4, Teredo), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def allowed(ip: IP, allow: Sequence[str]) -> bool:
    if any(ip in ipaddress.ip_network(net, strict=False) for net in allow):
        return True
    if isinstance(ip, ipaddress.IPv6Address) and (v4 := _embedded_v4(ip)) is not None:
        return allowed(v4, allow)
    return ip.is_global and not ip.is_multicast


def resolve(target: Target, allow: Sequence[str]) -> list[IP]:
    """Every address the target's host stands for; refused unless all are allowed."""
    ip = literal(target.host)
    if ip is not None:
        addresses = [ip]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise TargetRefused(f"'{target.host}' does not resolve") from None
        addresses = list(
            dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos)
        )
    refused = [a for a in addresses if not allowed(a, allow)]
    if refused or not addresses:
        raise TargetRefused(
            f"'{target.host}' is {refused[0] if refused else 'nowhere'}, not a public "
            "address (allow on-premises networks with webhook_allow_networks)"
        )
    return addresses


def check(url: str, allow: Sequence[str]) -> tuple[Target, list[IP]]:
    target = parse(url)
    return target, resolve(target, allow)
