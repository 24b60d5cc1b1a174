"""``--create-networks`` against the addresses a listening socket reports,
IPv4-mapped IPv6 ones included (a socket on ``::`` sees IPv4 clients so)."""

from __future__ import annotations

import pytest

from bourse.server.access import AccessPolicy


def policy(*networks: str) -> AccessPolicy:
    return AccessPolicy.build(admin_listener=False, create_networks=networks, token_file=None)


@pytest.mark.parametrize(
    ("networks", "peer", "allowed"),
    [
        (("10.0.0.0/8",), "10.1.2.3", True),
        (("10.0.0.0/8",), "::ffff:10.1.2.3", True),
        (("10.0.0.0/8",), "::ffff:11.1.2.3", False),
        (("10.0.0.0/8",), "::1", False),
        (("10.0.0.0/8",), "fe80::1%eth0", False),
        (("::ffff:10.0.0.0/104",), "::ffff:10.1.2.3", True),
        (("2001:db8::/32",), "2001:db8::7", True),
        (("2001:db8::/32",), "10.1.2.3", False),
        (("127.0.0.0/8", "192.168.7.3"), "::ffff:192.168.7.3", True),
    ],
)
def test_create_networks_match_the_peer_address(
    networks: tuple[str, ...], peer: str, allowed: bool
) -> None:
    assert policy(*networks).may_create(on_admin_listener=False, peer=peer) is allowed


def test_a_unix_socket_peer_is_in_no_network() -> None:
    assert not policy("127.0.0.0/8").may_create(on_admin_listener=False, peer=None)
