"""Who may do what: the admin listener, client networks, account tokens.

Off by default, so the protocol stays exactly as published. ``<create>``
mints cash and shares, so it can be kept to an admin listener (a second
port, on localhost by default) and/or to an allow-list of client
networks. ``<transactions>`` can require a per-account token (the
``token`` attribute), so that knowing an account number is not enough:
the server keeps only SHA-256 digests of the tokens and compares digests
in constant time. An empty ``<create/>`` creates nothing, so it is
accepted from anyone: it is how ``bourse health`` checks the exchange end
to end without create rights.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bourse.server.config import ServerConfig

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def token_digest(token: str) -> bytes:
    """The SHA-256 digest the server stores for ``token``."""
    return hashlib.sha256(token.encode()).digest()


def read_token_file(path: Path) -> dict[str, bytes]:
    """``account_id sha256-hex`` per line (blank lines and ``#`` comments
    allowed): each account's token digest."""
    digests: dict[str, bytes] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 2 or len(parts[1]) != 64:
            raise ValueError(f"{path}:{number}: expected 'account_id sha256-hex'")
        digests[parts[0]] = bytes.fromhex(parts[1])
    return digests


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The rules one connection's requests are held to."""

    #: Networks whose clients may ``<create>`` outside the admin listener
    #: (None: any client).
    create_networks: tuple[Network, ...] | None = None
    #: Token digest per account (None: no tokens asked).
    token_digests: dict[str, bytes] | None = None

    @classmethod
    def build(
        cls, *, admin_listener: bool, create_networks: Iterable[str], token_file: Path | None
    ) -> AccessPolicy:
        """The policy of a server. With an admin listener and no networks
        named, ``<create>`` is accepted on the admin listener only."""
        networks = tuple(ipaddress.ip_network(text, strict=False) for text in create_networks)
        allowed = networks if networks or admin_listener else None
        digests = None if token_file is None else read_token_file(token_file)
        return cls(allowed, digests)

    @classmethod
    def of(cls, config: ServerConfig) -> AccessPolicy:
        """The policy ``config`` sets, for every listener of the server."""
        return cls.build(
            admin_listener=config.admin_port is not None,
            create_networks=config.create_networks,
            token_file=config.account_tokens,
        )

    @property
    def asks_tokens(self) -> bool:
        """True when ``<transactions>`` must carry the account's token."""
        return self.token_digests is not None

    def may_create(self, *, on_admin_listener: bool, peer: str | None) -> bool:
        """May a client at ``peer`` (an IP address; None for a Unix socket)
        send ``<create>`` here?"""
        if on_admin_listener or self.create_networks is None:
            return True
        if peer is None:
            return False
        addresses = _address_forms(ipaddress.ip_address(peer))
        return any(address in network for address in addresses for network in self.create_networks)

    def may_transact(self, account_id: str, token: str | None) -> bool:
        """Does ``token`` open ``account_id``? Always, when no tokens are asked."""
        digests = self.token_digests
        if digests is None:
            return True
        expected = digests.get(account_id)
        return expected is not None and hmac.compare_digest(token_digest(token or ""), expected)


def _address_forms(address: Address) -> tuple[Address, ...]:
    """``address``, and the IPv4 address it stands for when it is IPv4-mapped:
    a socket listening on ``::`` sees IPv4 clients as ``::ffff:10.1.2.3``,
    which ``10.0.0.0/8`` must match (and ``::ffff:10.0.0.0/104`` still does)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return (address, address.ipv4_mapped)
    return (address,)
