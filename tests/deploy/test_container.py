"""The Dockerfile and docker-compose.yml, checked without a Docker engine.

No engine runs here, so the files are validated (the Compose schema,
hadolint), read (dockerfile-parse, YAML) for the properties the deployment
promises, and the container's own start command is run with the
environment the image and the compose file give it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from dockerfile_parse import DockerfileParser
from sqlalchemy import make_url

from tests.databases import EXTERNAL_URL_VARIABLE, external_url, fresh_database
from tests.e2e.harness import ServerProcess, exchange, running_command

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
VENV_BIN = Path(sys.executable).parent
PORT = 12345
WEB_PORT = 8080


def venv_tool(name: str) -> str:
    return str(VENV_BIN / name)


def final_stage() -> list[dict[str, Any]]:
    """The instructions of the Dockerfile's last stage, in order."""
    instructions: list[dict[str, Any]] = DockerfileParser(str(DOCKERFILE)).structure
    starts = [i for i, step in enumerate(instructions) if step["instruction"] == "FROM"]
    return instructions[starts[-1] :]


def instruction_values(name: str, stage: list[dict[str, Any]]) -> list[str]:
    return [step["value"] for step in stage if step["instruction"] == name]


def exec_form(value: str) -> list[str]:
    """An instruction's JSON (exec) form; shell form is refused."""
    words = json.loads(value)
    assert isinstance(words, list), f"not exec form: {value}"
    return [str(word) for word in words]


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


# -- validation ----------------------------------------------------------------


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_compose_file_matches_the_compose_specification() -> None:
    result = check_compose(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_check_catches_an_invalid_file(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["exchange"]["restart"] = ["on-failure"]
    broken["services"]["exchange"]["depends_on"]["db"]["condition"] = "healthy"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    assert check_compose(path).returncode != 0


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_tool("hadolint"), "--no-color", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_dockerfile_passes_hadolint() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_root_image_built_with_pip(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install bourse\nUSER root\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the "latest" tag
    assert "DL3013" in result.stdout  # unpinned pip install


# -- the image's promises ---------------------------------------------------------


def test_image_is_multi_stage_on_a_slim_python_base() -> None:
    parser = DockerfileParser(str(DOCKERFILE))
    assert len(parser.parent_images) >= 2
    assert all(image.startswith("python:3.11-slim") for image in parser.parent_images), (
        parser.parent_images
    )


def test_dependencies_are_installed_with_uv_from_the_lock_file() -> None:
    instructions = DockerfileParser(str(DOCKERFILE)).structure
    runs = [step["value"] for step in instructions if step["instruction"] == "RUN"]
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs
    assert all("--locked" in run and "--no-dev" in run for run in syncs)
    copies = [step["value"] for step in instructions if step["instruction"] == "COPY"]
    assert any("uv.lock" in copy.split() for copy in copies)
    assert not any("pip install" in run for run in runs)


def test_runtime_stage_runs_as_a_non_root_user() -> None:
    users = instruction_values("USER", final_stage())
    assert users, "the runtime stage never leaves root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_runtime_stage_exposes_the_protocol_port_and_has_a_healthcheck() -> None:
    stage = final_stage()
    exposed = " ".join(instruction_values("EXPOSE", stage)).split()
    assert str(PORT) in exposed
    assert str(WEB_PORT) in exposed
    healthchecks = instruction_values("HEALTHCHECK", stage)
    assert len(healthchecks) == 1
    assert healthcheck_command()[:2] == ["bourse", "health"]


def test_start_command_is_bourse_serve_in_exec_form() -> None:
    assert container_command() == ["bourse", "serve"]
    assert instruction_values("STOPSIGNAL", final_stage()) == ["SIGTERM"]


def test_configuration_is_environment_only() -> None:
    """Everything the image sets for bourse is a ``BOURSE_*`` variable; the
    command line carries no options."""
    env = DockerfileParser(str(DOCKERFILE)).envs
    assert env["BOURSE_HOST"] == "0.0.0.0"
    assert env["BOURSE_PORT"] == str(PORT)
    assert not any(word.startswith("-") for word in container_command())


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "bourse-data", "bench-results", "**/__pycache__"} <= ignored


# -- the compose file's promises ---------------------------------------------------


def test_db_is_postgres_16_with_a_named_volume_and_pg_isready() -> None:
    spec = compose()
    db = spec["services"]["db"]
    assert db["image"].startswith("postgres:16")
    volume, _, mount = db["volumes"][0].partition(":")
    assert volume in spec["volumes"]
    assert mount == "/var/lib/postgresql/data"
    assert "pg_isready" in db["healthcheck"]["test"]


def test_exchange_waits_for_a_healthy_db_restarts_and_publishes_the_port() -> None:
    exchange_service = compose()["services"]["exchange"]
    assert exchange_service["build"] == "."
    assert exchange_service["depends_on"]["db"]["condition"] == "service_healthy"
    assert exchange_service["restart"] == "on-failure"
    assert f"{PORT}:{PORT}" in exchange_service["ports"]
    assert f"{WEB_PORT}:{WEB_PORT}" in exchange_service["ports"]
    url = make_url(exchange_service["environment"]["BOURSE_DATABASE_URL"])
    db = compose()["services"]["db"]["environment"]
    assert url.host == "db"
    assert (url.username, url.password, url.database) == (
        db["POSTGRES_USER"],
        db["POSTGRES_PASSWORD"],
        db["POSTGRES_DB"],
    )


# -- the container's start command, run here ----------------------------------------


def container_command() -> list[str]:
    stage = final_stage()
    entrypoint = exec_form(instruction_values("ENTRYPOINT", stage)[-1])
    return entrypoint + exec_form(instruction_values("CMD", stage)[-1])


def healthcheck_command() -> list[str]:
    value = instruction_values("HEALTHCHECK", final_stage())[-1]
    return exec_form(value[value.index("CMD") + len("CMD") :].strip())


def container_environment(database_url: str, port: int, data_dir: Path) -> dict[str, str]:
    """The image's ENV plus the compose file's ``environment``, with the only
    changes running outside Docker needs: this database instead of host
    ``db``, loopback and free ports instead of 0.0.0.0:12345 and :8080, a
    scratch data directory, and this virtual environment in front of PATH."""
    env = dict(DockerfileParser(str(DOCKERFILE)).envs)
    env.update(compose()["services"]["exchange"]["environment"])
    env.update(
        BOURSE_DATABASE_URL=database_url,
        BOURSE_HOST="127.0.0.1",
        BOURSE_PORT=str(port),
        BOURSE_HTTP_PORT="0",
        BOURSE_DATA_DIR=str(data_dir),
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


@pytest.fixture
def external_database() -> Iterator[str]:
    admin = external_url()
    if admin is None:
        pytest.skip(f"no external PostgreSQL: set {EXTERNAL_URL_VARIABLE} to run this test")
    with fresh_database(admin) as url:
        yield url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        healthcheck_command(), env=env, capture_output=True, text=True, timeout=30, check=False
    )


def trade(server: ServerProcess) -> None:
    created = exchange(
        server,
        b'<create><account id="1" balance="1000"/><account id="2" balance="0"/>'
        b'<symbol sym="BRS"><account id="2">10</account></symbol></create>',
    )
    assert created.count(b"<created") == 3, created
    sold = exchange(
        server, b'<transactions id="2"><order sym="BRS" amount="-4" limit="7"/></transactions>'
    )
    assert b'<opened sym="BRS" amount="-4" limit="7" id="1"/>' in sold, sold
    bought = exchange(
        server, b'<transactions id="1"><order sym="BRS" amount="4" limit="9"/></transactions>'
    )
    assert b'id="2"' in bought, bought


def test_container_command_serves_with_the_compose_environment(
    external_database: str, tmp_path: Path
) -> None:
    env = container_environment(external_database, free_port(), tmp_path / "unused-data")
    command = container_command()
    with running_command(command, env) as server:
        assert server.port == int(env["BOURSE_PORT"])
        healthy = run_healthcheck(env)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        trade(server)
        assert server.stop() == 0, "SIGTERM must drain and exit 0:\n" + "".join(server.log)
    unhealthy = run_healthcheck(env)
    assert unhealthy.returncode == 1, "the health check passes with no server"
    assert not (tmp_path / "unused-data").exists(), "a database URL must bypass the data dir"
    with running_command(command, env) as server:
        query = exchange(server, b'<transactions id="1"><query id="2"/></transactions>')
        assert b'<executed shares="4" price="7"' in query, query
        assert server.stop() == 0


def secure_environment(env: dict[str, str], directory: Path) -> dict[str, str]:
    """``env`` plus what docs/security.md recommends for a public venue, set
    the container's way: an admin listener, account tokens, TLS requiring
    client certificates."""
    authority = trustme.CA()
    files = {name: directory / f"{name}.pem" for name in ("cert", "key", "ca")}
    certificate = authority.issue_cert("exchange.example")
    certificate.cert_chain_pems[0].write_to_path(str(files["cert"]))
    certificate.private_key_pem.write_to_path(str(files["key"]))
    authority.cert_pem.write_to_path(str(files["ca"]))
    tokens = directory / "tokens"
    tokens.write_text("1 " + "0" * 64 + "\n")
    return {
        **env,
        "BOURSE_ADMIN_PORT": str(free_port()),
        "BOURSE_ACCOUNT_TOKENS": str(tokens),
        "BOURSE_TLS_CERT": str(files["cert"]),
        "BOURSE_TLS_KEY": str(files["key"]),
        "BOURSE_TLS_CLIENT_CA": str(files["ca"]),
    }


def test_the_healthcheck_passes_with_access_control_and_tls_on(
    external_database: str, tmp_path: Path
) -> None:
    env = container_environment(external_database, free_port(), tmp_path / "unused-data")
    env = secure_environment(env, tmp_path)
    with running_command(container_command(), env) as server:
        healthy = run_healthcheck(env)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert server.stop() == 0, "".join(server.log)
    assert run_healthcheck(env).returncode == 1
