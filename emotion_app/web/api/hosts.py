"""The `Host` names this server answers to (the guard's first check, against DNS rebinding): a page
on evil.example whose name is re-pointed at 127.0.0.1 still sends `Host: evil.example`."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
SHARE_SUFFIX = ".gradio.live"


def hostname(host: str) -> str:
    """`Host` header -> lower-case name without port or IPv6 brackets ("[::1]:7860" -> "::1")."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def is_loopback(bind_host: str) -> bool:
    name = hostname(bind_host) if bind_host.startswith("[") else bind_host.strip().lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


@dataclass
class HostPolicy:
    """The `Host` names this server answers to: the loopback names, the bind address, the machine's
    name and any IP address for a wildcard bind (0.0.0.0, ::), and the `--allowed-hosts` entries
    (a name, `.example.com` for it and its subdomains, or `*` for any)."""

    names: set[str] = field(default_factory=lambda: set(LOOPBACK_NAMES))
    suffixes: list[str] = field(default_factory=list)
    any_ip: bool = False
    any_host: bool = False

    @classmethod
    def for_bind(cls, bind_host: str, allowed_hosts=(), share: bool = False) -> HostPolicy:
        policy = cls()
        bind = bind_host.strip().strip("[]").lower()
        if bind in WILDCARD_BINDS:
            policy.any_ip = True
            policy.names.add(socket.gethostname().lower())
        else:
            policy.names.add(bind)
        for entry in allowed_hosts:
            policy.allow(entry)
        if share:
            policy.allow(SHARE_SUFFIX)
        return policy

    def allow(self, entry: str) -> None:
        entry = entry.strip().lower()
        if entry == "*":
            self.any_host = True
        elif entry.startswith("."):
            self.suffixes.append(entry)
        elif entry:
            self.names.add(hostname(entry))

    def allows(self, host: str | None) -> bool:
        if host is None or self.any_host:  # no Host (HTTP/1.0): not a browser, so not rebinding
            return True
        name = hostname(host)
        if name in self.names or (self.any_ip and _is_ip(name)):
            return True
        return any(name.endswith(s) or name == s[1:] for s in self.suffixes)
