"""The command line: options, their environment variables, and precedence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bourse.cli import COMMANDS, build_parser, main

BOURSE = Path(sys.executable).with_name("bourse")


def test_serve_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.database_url) == ("0.0.0.0", 12345, None)
    assert args.data_dir == Path("bourse-data")


def test_environment_sets_defaults_and_the_command_line_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOURSE_PORT", "4000")
    monkeypatch.setenv("BOURSE_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("BOURSE_COMMIT_TIMEOUT", "2.5")
    args = build_parser().parse_args(["serve"])
    assert (args.port, args.database_url, args.commit_timeout) == (4000, "postgresql://u@h/db", 2.5)
    assert build_parser().parse_args(["serve", "--port", "5000"]).port == 5000


def test_help_never_shows_the_database_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOURSE_DATABASE_URL", "postgresql://user:hunter2@db/bourse")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    out = capsys.readouterr().out
    assert "BOURSE_DATABASE_URL" in out
    assert "hunter2" not in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_adds_its_arguments_when_parsed(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args([command, "--help"])
    assert stopped.value.code == 0
    assert f"usage: bourse {command} [-h]" in capsys.readouterr().out


def test_serve_refuses_an_unreadable_configuration_before_starting(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("1 not-a-digest\n")
    assert main(["serve", "--account-tokens", str(tokens)]) == 2
    assert main(["serve", "--tls-cert", str(tmp_path / "missing.pem")]) == 2


def test_a_reader_that_stops_early_ends_the_output_quietly(tmp_path: Path) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # nobody will read: the first write fails with EPIPE
    try:
        finished = subprocess.run(
            [str(BOURSE), "gen", "--out", str(tmp_path), "--accounts", "3", "--requests", "5"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # write at once, as a long output does
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(writer)
    assert finished.stderr == ""
    assert finished.returncode == 128 + signal.SIGPIPE
    assert (tmp_path / "manifest.json").exists(), "the command itself ran to its end"
