"""``bourse health`` against real servers configured as docs/security.md
recommends, the server and the probe reading the same ``BOURSE_*``
environment as in the container: plain, with an admin listener, create
networks or account tokens, with TLS, with TLS requiring client
certificates (a probe certificate, the admin listener or the metrics
``/healthz``), and with nothing listening."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from pathlib import Path

import pytest
import trustme

from tests.e2e.harness import BOURSE, exchange, running_command

SERVE = [str(BOURSE), "serve"]
CREATE = b'<create><account id="1" balance="100"/></create>'
FORBIDDEN = b"<error>Create is not allowed from this connection</error>"


def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


@pytest.fixture
def environment(module_database_url: str) -> dict[str, str]:
    """What the server and the probe both read: this database, loopback
    and a port of its own."""
    return {
        **os.environ,
        "BOURSE_DATABASE_URL": module_database_url,
        "BOURSE_HOST": "127.0.0.1",
        "BOURSE_PORT": free_port(),
    }


def health(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``bourse health`` as the container's HEALTHCHECK runs it."""
    return subprocess.run(
        [str(BOURSE), "health", "--timeout", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def assert_healthy(env: dict[str, str], where: str) -> None:
    result = health(env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"healthy: {where}"


def assert_unhealthy(env: dict[str, str], saying: str) -> None:
    result = health(env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert saying in result.stderr


# -- plain TCP -------------------------------------------------------------------


def token_file(directory: Path) -> Path:
    path = directory / "tokens"
    path.write_text(f"1 {hashlib.sha256(b's3cret').hexdigest()}\n")
    return path


@pytest.mark.parametrize("access", ["none", "admin listener", "create networks", "tokens"])
def test_healthy_whatever_the_access_control(
    environment: dict[str, str], tmp_path: Path, access: str
) -> None:
    settings = {
        "none": {},
        "admin listener": {"BOURSE_ADMIN_PORT": free_port()},
        "create networks": {"BOURSE_CREATE_NETWORKS": "10.0.0.0/8"},
        "tokens": {"BOURSE_ACCOUNT_TOKENS": str(token_file(tmp_path))},
    }[access]
    env = {**environment, **settings}
    with running_command(SERVE, env) as server:
        assert_healthy(env, f"127.0.0.1:{server.port}")
        if access in {"admin listener", "create networks"}:  # creating stays refused
            assert FORBIDDEN in exchange(server, CREATE)
        assert server.stop() == 0


def test_unhealthy_when_nothing_listens(environment: dict[str, str]) -> None:
    assert_unhealthy(environment, "no answer from 127.0.0.1:")


# -- TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


def write_pair(certificate: trustme.LeafCert, directory: Path, name: str) -> tuple[str, str]:
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(cert))
    certificate.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


@pytest.fixture
def tls_environment(
    environment: dict[str, str], authority: trustme.CA, tmp_path: Path
) -> dict[str, str]:
    """TLS on the public port, with a certificate for the public name only."""
    cert, key = write_pair(authority.issue_cert("exchange.example"), tmp_path, "server")
    return {**environment, "BOURSE_TLS_CERT": cert, "BOURSE_TLS_KEY": key}


@pytest.fixture
def client_ca_environment(
    tls_environment: dict[str, str], authority: trustme.CA, tmp_path: Path
) -> dict[str, str]:
    """TLS that requires client certificates."""
    ca = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca))
    return {**tls_environment, "BOURSE_TLS_CLIENT_CA": str(ca)}


def test_healthy_over_tls(tls_environment: dict[str, str]) -> None:
    with running_command(SERVE, tls_environment) as server:
        assert_healthy(tls_environment, f"127.0.0.1:{server.port} (TLS)")
        assert server.stop() == 0


def test_client_certificates_the_probe_presents_one(
    client_ca_environment: dict[str, str], authority: trustme.CA, tmp_path: Path
) -> None:
    cert, key = write_pair(authority.issue_cert("health-probe"), tmp_path, "probe")
    env = {**client_ca_environment, "BOURSE_HEALTH_CERT": cert, "BOURSE_HEALTH_KEY": key}
    with running_command(SERVE, env) as server:
        assert_healthy(env, f"127.0.0.1:{server.port} (TLS)")
        assert server.stop() == 0


def test_client_certificates_without_one_the_admin_listener(
    client_ca_environment: dict[str, str],
) -> None:
    env = {**client_ca_environment, "BOURSE_ADMIN_PORT": free_port()}
    with running_command(SERVE, env) as server:
        assert_healthy(env, f"127.0.0.1:{env['BOURSE_ADMIN_PORT']}")
        assert server.stop() == 0


def test_client_certificates_without_one_the_metrics_healthz(
    client_ca_environment: dict[str, str],
) -> None:
    env = {**client_ca_environment, "BOURSE_METRICS_PORT": free_port()}
    with running_command(SERVE, env) as server:
        assert_healthy(env, f"127.0.0.1:{env['BOURSE_METRICS_PORT']} (/healthz)")
        assert server.stop() == 0


def test_client_certificates_and_no_other_way_in_says_what_is_missing(
    client_ca_environment: dict[str, str],
) -> None:
    assert_unhealthy(client_ca_environment, "--health-cert")
