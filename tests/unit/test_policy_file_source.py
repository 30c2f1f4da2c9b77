"""RISK_POLICY_FILE: a worker without PostgreSQL reads its policies from a TOML file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from risk_worker.adapters.policy_admin import PolicyFileError
from risk_worker.bench.core import bench_policies
from risk_worker.bench.load import write_policy_file
from risk_worker.domain.policies import default_policies
from risk_worker.errors import ConfigError
from risk_worker.service.policy_source import FilePolicySource, policy_id
from risk_worker.service.settings import load_settings

FIELDS = ("name", "type", "metric", "operator", "threshold", "scope", "scope_id", "enabled")


def test_file_source_when_file_written_then_loads_the_same_policies(tmp_path: Path) -> None:
    path = write_policy_file(tmp_path / "policies.toml")

    loaded = asyncio.run(FilePolicySource(path).load())

    def key(p: object) -> tuple[object, ...]:
        return tuple(getattr(p, f) for f in (*FIELDS, "priority"))

    assert sorted(map(key, loaded)) == sorted(map(key, bench_policies()))
    assert all(p.id == policy_id(p.name) for p in loaded)


def test_policy_id_when_default_policy_then_same_id_as_built_in() -> None:
    assert all(policy_id(p.name) == p.id for p in default_policies())


def test_file_source_when_file_invalid_then_raises_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[policy]]\nname = "x"\ntype = "hard"\n', encoding="utf-8")

    with pytest.raises(PolicyFileError, match=r"bad\.toml"):
        asyncio.run(FilePolicySource(path).load())


def test_settings_when_policy_file_missing_then_config_error_names_variable(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="RISK_POLICY_FILE"):
        load_settings({"RISK_POLICY_FILE": str(tmp_path / "absent.toml")})


def test_settings_when_policy_file_and_database_then_config_error(tmp_path: Path) -> None:
    path = write_policy_file(tmp_path / "policies.toml")

    assert load_settings({"RISK_POLICY_FILE": str(path)}).policy_file == str(path)
    with pytest.raises(ConfigError, match="RISK_POLICY_FILE"):
        load_settings({"RISK_POLICY_FILE": str(path), "RISK_DATABASE_URL": "postgresql://u@h/db"})
