"""Which URLs a model pull may fetch: an operator allow-list of hosts, and no internal addresses.

Every hop of a download (the first URL and each redirect) goes through `UrlPolicy.check`, which
resolves the host and refuses loopback, private, link-local, multicast, reserved and unspecified
addresses unless the operator allowed them (tests, a LAN mirror). Callers cannot name other hosts.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable

import httpx

from therascript_common.errors import InvalidArgument

Resolver = Callable[[str], list[str]]


def resolve_host(host: str) -> list[str]:
    """Every address `host` resolves to (A and AAAA)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise InvalidArgument(f"Cannot resolve host '{host}'.") from error
    return sorted({str(info[4][0]) for info in infos})


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def host_allowed(host: str, allowed: list[str]) -> bool:
    """True when `host` equals an allow-list entry or is a subdomain of a `*.domain` entry."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and host != entry[2:]:
                return True
        elif host == entry:
            return True
    return False


class UrlPolicy:
    """Checks pull URLs against the allow-list and the internal-address rule."""

    def __init__(self, allowed_hosts: list[str], allow_private: bool, resolver: Resolver = resolve_host) -> None:
        self._allowed = [h.lower() for h in allowed_hosts]
        self._allow_private = allow_private
        self._resolve = resolver

    def check(self, url: str) -> httpx.URL:
        """The parsed URL when a pull may fetch it; raises InvalidArgument saying why not."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as error:
            raise InvalidArgument(f"Invalid model URL: {error}") from error
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise InvalidArgument("Model URLs must be http(s) URLs with a host.")
        if parsed.userinfo:
            raise InvalidArgument("Model URLs must not carry credentials.")
        if not self._allowed:
            raise InvalidArgument("Model pulls are disabled: no hosts are allowed (LLM_PULL_ALLOWED_HOSTS).")
        if not host_allowed(parsed.host, self._allowed):
            raise InvalidArgument(f"Host '{parsed.host}' is not on the model-pull allow-list.")
        if not self._allow_private:
            for address in self._resolve(parsed.host):
                if _internal(address):
                    raise InvalidArgument(f"Host '{parsed.host}' resolves to an internal address ({address}).")
        return parsed
