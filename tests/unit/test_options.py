"""Each ``bourse serve`` option is declared once, on its ``ServerConfig``
field: these tests hold the flags, variables, checks, help and README
table derived from those declarations to what users rely on."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from bourse.cli import build_parser
from bourse.commands.serve import SERVE_OPTIONS, server_config
from bourse.options import declared_options
from bourse.readme import REWRITE_COMMAND, with_current_table
from bourse.server.config import ServerConfig

README = Path(__file__).parents[2] / "README.md"


def test_every_server_setting_is_an_option() -> None:
    declared = {option.name for option in declared_options(ServerConfig)}
    undeclared = {spec.name for spec in fields(ServerConfig)} - declared
    assert not undeclared, f"ServerConfig fields users cannot set: {undeclared}"


def test_flags_and_variables_follow_the_names() -> None:
    by_name = {option.name: option for option in SERVE_OPTIONS}
    assert by_name["max_reply_fills"].flag == "--max-reply-fills"
    assert by_name["max_reply_fills"].variable == "BOURSE_MAX_REPLY_FILLS"
    assert by_name["log_level"].variable == "BOURSE_LOG_LEVEL"


def test_without_options_the_configuration_is_the_default() -> None:
    assert server_config(build_parser().parse_args(["serve"])) == ServerConfig()


@pytest.mark.parametrize(
    ("flag", "text", "field", "value"),
    [
        ("--max-commands", "500", "max_commands", 500),
        ("--recovery-timeout", "2.5", "recovery_timeout", 2.5),
        ("--gateway-restart-delay", "0", "gateway_restart_delay", 0.0),
        ("--closing-stall", "1", "closing_stall", 1.0),
        ("--write-high-water", "65536", "write_high_water", 65536),
        ("--stats-interval", "60", "stats_interval", 60.0),
        ("--create-networks", "10.0.0.0/8, ::1", "create_networks", ("10.0.0.0/8", "::1")),
        ("--admin-port", "0", "admin_port", 0),
        ("--metrics-port", "off", "metrics_port", None),
        ("--account-tokens", "/etc/tokens", "account_tokens", Path("/etc/tokens")),
    ],
)
def test_an_option_reaches_the_configuration(
    flag: str, text: str, field: str, value: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = server_config(build_parser().parse_args(["serve", flag, text]))
    assert getattr(given, field) == value
    monkeypatch.setenv("BOURSE_" + field.upper(), text)
    from_environment = server_config(build_parser().parse_args(["serve"]))
    assert getattr(from_environment, field) == value


@pytest.mark.parametrize(
    "arguments",
    [
        ["--workers", "-1"],
        ["--port", "65536"],
        ["--idle-timeout", "-1"],
        ["--idle-timeout", "nan"],
        ["--max-batch-rows", "0"],
        ["--stats-interval", "0"],
        ["--create-networks", "10.0.0.300/8"],
        ["--accept", "fork"],
        ["--log-level", "LOUD"],
    ],
)
def test_a_bad_value_is_refused_with_the_usage(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["serve", *arguments])
    assert stopped.value.code == 2
    assert f"argument {arguments[0]}" in capsys.readouterr().err


def test_a_bad_variable_is_refused_like_a_bad_flag_and_a_flag_overrides_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOURSE_ACCEPT", "fork")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve"])
    assert "argument --accept" in capsys.readouterr().err
    assert build_parser().parse_args(["serve", "--accept", "shared"]).accept == "shared"


def test_help_shows_a_variable_in_force_unless_it_is_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BOURSE_PORT", "4000")
    monkeypatch.setenv("BOURSE_DATABASE_URL", "postgresql://user:hunter2@db/bourse")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "BOURSE_PORT, set to 4000" in out
    assert "BOURSE_DATABASE_URL, set" in out
    assert "hunter2" not in out


def test_db_upgrade_takes_only_the_database_options(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["db", "upgrade", "--data-dir", "/tmp/x"])
    assert (args.database_url, args.data_dir) == (None, Path("/tmp/x"))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["db", "upgrade", "--port", "1"])
    assert "unrecognized arguments: --port" in capsys.readouterr().err


def test_health_takes_every_serve_option() -> None:
    serve = vars(build_parser().parse_args(["serve"]))
    health = vars(build_parser().parse_args(["health"]))
    assert serve.keys() - {"run"} <= health.keys()


def test_the_readme_table_is_the_declarations() -> None:
    readme = README.read_text(encoding="utf-8")
    assert with_current_table(readme) == readme, (
        f"README.md's table of options differs from the declarations; run `{REWRITE_COMMAND}`"
    )


def test_serve_help_loads_neither_the_server_nor_the_benchmarks() -> None:
    probe = (
        "import sys\n"
        "from bourse.cli import main\n"
        "try:\n    main(['serve', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('bourse.bench', 'bourse.server.app', 'asyncio', 'uvloop', 'lxml', 'rich')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)), file=sys.stderr)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert finished.stderr.strip() == "[]"
