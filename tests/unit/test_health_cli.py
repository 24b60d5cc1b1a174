"""``bourse health`` reads ``serve``'s options and ``BOURSE_*`` variables,
so the container's health check finds the server the way it is configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from bourse.cli import build_parser, main


def test_health_reads_the_servers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOURSE_PORT", "4000")
    monkeypatch.setenv("BOURSE_ADMIN_PORT", "4001")
    monkeypatch.setenv("BOURSE_TLS_CLIENT_CA", "/etc/bourse/ca.pem")
    monkeypatch.setenv("BOURSE_HEALTH_CERT", "/etc/bourse/probe.pem")
    args = build_parser().parse_args(["health"])
    assert (args.port, args.admin_port) == (4000, 4001)
    assert (args.tls_client_ca, args.health_cert) == (
        Path("/etc/bourse/ca.pem"),
        Path("/etc/bourse/probe.pem"),
    )
    assert build_parser().parse_args(["health", "--port", "5000"]).port == 5000


def test_health_says_what_is_missing_when_it_cannot_probe(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOURSE_TLS_CERT", "/etc/bourse/server.pem")
    monkeypatch.setenv("BOURSE_TLS_CLIENT_CA", "/etc/bourse/ca.pem")
    assert main(["health", "--timeout", "1"]) == 1
    assert "--health-cert" in capsys.readouterr().err
