"""docker/nats-server.conf and docker/nats-entrypoint.sh, checked by the real nats-server.

``nats-server -t`` parses a configuration and exits (0 when valid) without serving, so the file
that compose.yaml mounts is validated here exactly as the container would read it: through the
entrypoint, which exports the users' passwords from secret files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from risk_worker.devstack.nats_server import find_nats_server

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "docker" / "nats-server.conf"
CLUSTER_CONF = ROOT / "docker" / "nats-cluster.conf"
ENTRYPOINT = ROOT / "docker" / "nats-entrypoint.sh"
PASSWORD_VARIABLES = ("WORKER_PASSWORD", "OPERATOR_PASSWORD", "CLIENT_PASSWORD")
TRICKY_PASSWORDS = {
    # unquoted, nats-server would read a number, a boolean and a syntax error
    "WORKER_PASSWORD": "0123456789",
    "OPERATOR_PASSWORD": "true",
    "CLIENT_PASSWORD": "p@ss word #1 $HOME 'x' ; {y}",
}


def secret_env(tmp_path: Path, passwords: dict[str, str]) -> dict[str, str]:
    """This environment without the password variables, plus ``NAME_FILE`` for each password."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("PASSWORD")}
    env = {k: v for k, v in env.items() if not k.endswith("PASSWORD_FILE")}
    for name, value in passwords.items():
        path = tmp_path / f"{name.lower()}.txt"
        path.write_text(value + "\n", encoding="utf-8")
        env[f"{name}_FILE"] = str(path)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=30, check=False)


def test_config_is_valid_when_the_entrypoint_exports_the_secrets(tmp_path: Path) -> None:
    env = secret_env(tmp_path, TRICKY_PASSWORDS)
    result = run(["sh", str(ENTRYPOINT), find_nats_server(), "-t", "-c", str(CONF)], env)
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout + result.stderr


def test_entrypoint_exports_each_password_as_a_quoted_configuration_string(
    tmp_path: Path,
) -> None:
    env = secret_env(tmp_path, TRICKY_PASSWORDS)
    show = "import os, json; print(json.dumps({k: os.environ[k] for k in %r}))"
    result = run(["sh", str(ENTRYPOINT), sys.executable, "-c", show % (PASSWORD_VARIABLES,)], env)
    assert result.returncode == 0, result.stderr
    exported = json.loads(result.stdout)
    assert exported == {k: f'"{v}"' for k, v in TRICKY_PASSWORDS.items()}


def test_config_with_a_syntax_error_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "nats-server.conf"
    text = CONF.read_text(encoding="utf-8")
    broken.write_text(text.replace("authorization {", "authorization {{", 1), encoding="utf-8")
    env = secret_env(tmp_path, TRICKY_PASSWORDS)
    result = run(["sh", str(ENTRYPOINT), find_nats_server(), "-t", "-c", str(broken)], env)
    assert result.returncode != 0
    assert "valid" not in result.stdout


def test_config_without_a_password_variable_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("PASSWORD")}
    env.update(WORKER_PASSWORD='"w"', OPERATOR_PASSWORD='"o"')  # CLIENT_PASSWORD missing
    result = run([find_nats_server(), "-t", "-c", str(CONF)], env)
    assert result.returncode != 0
    assert "CLIENT_PASSWORD" in result.stderr


@pytest.mark.parametrize(
    ("client_password", "expected"),
    [
        (None, "CLIENT_PASSWORD_FILE is not set"),
        ("", "is empty"),
        ("CHANGE-ME-nats-client-password", "placeholder"),
        ('with "quote"', "double quote"),
        ("with \\ backslash", "backslash"),
        ("two\nlines", "line break"),
    ],
)
def test_entrypoint_refuses_a_missing_or_unusable_secret(
    tmp_path: Path, client_password: str | None, expected: str
) -> None:
    passwords = {"WORKER_PASSWORD": "w-secret", "OPERATOR_PASSWORD": "o-secret"}
    if client_password is not None:
        passwords["CLIENT_PASSWORD"] = client_password
    env = secret_env(tmp_path, passwords)
    result = run(["sh", str(ENTRYPOINT), "true"], env)
    assert result.returncode != 0
    assert expected in result.stderr
    assert client_password is None or not client_password or client_password not in result.stderr


def test_entrypoint_refuses_an_unreadable_secret_file(tmp_path: Path) -> None:
    env = secret_env(tmp_path, {"WORKER_PASSWORD": "w", "OPERATOR_PASSWORD": "o"})
    env["CLIENT_PASSWORD_FILE"] = str(tmp_path / "missing.txt")
    result = run(["sh", str(ENTRYPOINT), "true"], env)
    assert result.returncode != 0
    assert "cannot read" in result.stderr


def test_jetstream_store_is_on_the_compose_volume() -> None:
    store = re.search(r'store_dir:\s*"([^"]+)"', CONF.read_text(encoding="utf-8"))
    assert store is not None
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    mounts = [v.split(":")[1] for v in compose["services"]["nats"]["volumes"]]
    assert any(store.group(1).startswith(m.rstrip("/") + "/") for m in mounts), mounts


# -- docker/nats-cluster.conf (compose profile `cluster`) ----------------------------------------


def authorization_block(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text[text.index("authorization {") :]


@pytest.mark.parametrize("name", ["nats-1", "nats-2", "nats-3"])
def test_cluster_config_is_valid_for_each_node(tmp_path: Path, name: str) -> None:
    env = {**secret_env(tmp_path, TRICKY_PASSWORDS), "NATS_SERVER_NAME": name}
    result = run(["sh", str(ENTRYPOINT), find_nats_server(), "-t", "-c", str(CLUSTER_CONF)], env)
    assert result.returncode == 0, result.stderr
    assert "is valid" in result.stdout + result.stderr


def test_cluster_config_without_a_server_name_is_refused(tmp_path: Path) -> None:
    env = secret_env(tmp_path, TRICKY_PASSWORDS)
    env.pop("NATS_SERVER_NAME", None)
    result = run(["sh", str(ENTRYPOINT), find_nats_server(), "-t", "-c", str(CLUSTER_CONF)], env)
    assert result.returncode != 0
    assert "NATS_SERVER_NAME" in result.stderr


def test_cluster_config_has_the_single_servers_users_byte_for_byte() -> None:
    assert authorization_block(CLUSTER_CONF) == authorization_block(CONF)


def test_cluster_config_routes_the_three_nodes_with_jetstream_in_one_domain() -> None:
    text = CLUSTER_CONF.read_text(encoding="utf-8")
    routes = re.findall(r"nats-route://([\w-]+):6222", text)
    assert routes == ["nats-1", "nats-2", "nats-3"]
    assert re.search(r"^\s*domain:\s*\w+", text, re.M)
    assert re.search(r'store_dir:\s*"/data/jetstream"', text)
    assert "server_name: $NATS_SERVER_NAME" in text
