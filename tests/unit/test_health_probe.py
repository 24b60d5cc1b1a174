"""``bourse health`` without a real exchange: where it asks in each
configuration, what answers count as healthy, the certificate it trusts,
and that it does not drag in the benchmark package."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

from bourse.health import find_target, loopback_if_wildcard, probe
from bourse.server.config import ServerConfig

CLEAN = b'<?xml version="1.0" encoding="UTF-8"?>\n<results>\n</results>\n'
UNAVAILABLE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<results><error>Exchange unavailable: its '
    b"database cannot be reached; nothing was changed</error></results>\n"
)
CA_FILE = Path("ca.pem")


# -- where it asks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0.0.0.0", "127.0.0.1"),
        ("", "127.0.0.1"),
        ("::", "::1"),
        ("10.1.2.3", "10.1.2.3"),
        ("exchange.example", "exchange.example"),
    ],
)
def test_a_wildcard_address_is_asked_on_loopback(host: str, expected: str) -> None:
    assert loopback_if_wildcard(host) == expected


def test_plain_and_access_controlled_servers_are_asked_on_the_public_port() -> None:
    for config in (
        ServerConfig(port=4000),
        ServerConfig(port=4000, admin_port=4001, create_networks=("10.0.0.0/8",)),
    ):
        assert str(find_target(config, None, None)) == "127.0.0.1:4000"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            ServerConfig(port=4000, tls_client_ca=CA_FILE, admin_port=4001, metrics_port=4002),
            "127.0.0.1:4001",
        ),
        (
            ServerConfig(port=4000, tls_client_ca=CA_FILE, metrics_port=4002, metrics_host="::"),
            "[::1]:4002 (/healthz)",
        ),
    ],
)
def test_without_a_client_certificate_it_goes_round_the_tls_port(
    config: ServerConfig, expected: str
) -> None:
    assert str(find_target(config, None, None)) == expected


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (ServerConfig(port=4000, tls_client_ca=CA_FILE), "--health-cert"),
        (ServerConfig(port=0), "port 0"),
    ],
)
def test_when_there_is_nowhere_to_ask_it_says_why(config: ServerConfig, reason: str) -> None:
    target = find_target(config, None, None)
    assert isinstance(target, str)
    assert reason in target
    outcome = probe(config, 1)
    assert not outcome.healthy
    assert reason in outcome.detail


def test_missing_tls_files_are_a_problem_of_the_probe() -> None:
    outcome = probe(ServerConfig(port=4000, tls_cert=Path("/nonexistent.pem")), 1)
    assert not outcome.healthy
    assert "cannot set up the probe" in outcome.detail


# -- what counts as healthy ------------------------------------------------------------


@contextmanager
def answering(reply: bytes, tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A one-connection server on loopback that reads the probe and sends
    ``reply``; its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener, listener.accept()[0] as accepted:
            try:
                connection = accepted if tls is None else tls.wrap_socket(accepted, True)
                connection.recv(1024)
                connection.sendall(reply)
            except OSError:
                pass  # the probe gave up (a certificate it does not trust)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    thread.join(10)


@pytest.mark.parametrize(
    ("reply", "healthy", "saying"),
    [
        (CLEAN, True, "127.0.0.1:"),
        (UNAVAILABLE, False, "Exchange unavailable"),
        (b"", False, "unexpected reply"),
    ],
)
def test_only_an_error_free_results_is_healthy(reply: bytes, healthy: bool, saying: str) -> None:
    with answering(reply) as port:
        outcome = probe(ServerConfig(host="127.0.0.1", port=port), 5)
    assert outcome.healthy is healthy
    assert saying in outcome.detail


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def server_side(certificate: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    return context


def test_over_tls_it_trusts_the_certificate_the_server_is_configured_with(
    authority: trustme.CA, tmp_path: Path
) -> None:
    configured = authority.issue_cert("exchange.example")
    cert_file = tmp_path / "server.pem"
    configured.cert_chain_pems[0].write_to_path(str(cert_file))
    with answering(CLEAN, server_side(configured)) as port:
        outcome = probe(ServerConfig(port=port, tls_cert=cert_file), 5)
    assert outcome.healthy, outcome.detail
    assert outcome.detail.endswith("(TLS)")
    with answering(CLEAN, server_side(authority.issue_cert("exchange.example"))) as port:
        outcome = probe(ServerConfig(port=port, tls_cert=cert_file), 5)
    assert not outcome.healthy
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.detail


def test_the_probe_does_not_import_the_benchmark_package() -> None:
    code = "import sys, bourse.health; print(sorted(m for m in sys.modules if 'bench' in m))"
    imported = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert imported.stdout.strip() == "[]"
