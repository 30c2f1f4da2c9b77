"""docs/contract/ (AsyncAPI 3.0 + JSON Schema) is what the Structs generate, and agrees with
subjects.md: the same channels, every example valid against its message's schema.

The official AsyncAPI parser's check is in ``test_contract_asyncapi.py`` (it needs node).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from risk_worker.adapters import nats_service, query_endpoints
from risk_worker.cli.contract import REGENERATE, stale_files, write_files
from risk_worker.wire.contract import STRUCTS, render_contract
from risk_worker.wire.contract_channels import CHANNELS, EVENTS_STREAM, QUEUE_GROUP
from risk_worker.wire.contract_text import examples_from_markdown, to_yaml
from tests.schema_kit import validate
from tests.unit.test_contract import _code, _codes, _one_table

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "docs" / "contract"
SUBJECTS = (REPO / "subjects.md").read_text(encoding="utf-8")
EXAMPLES = examples_from_markdown(SUBJECTS, STRUCTS)


def _schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CONTRACT / "schemas" / f"{name}.json").read_text())
    return data


# -- the committed files are the generated ones -------------------------------------------------


def test_committed_contract_when_regenerated_then_identical(tmp_path: Path) -> None:
    files = render_contract(SUBJECTS)
    stale = stale_files(CONTRACT, files)
    assert stale == [], f"docs/contract/ is out of date ({', '.join(stale)}): run `{REGENERATE}`"
    write_files(tmp_path, files)
    for rel, text in files.items():
        assert (tmp_path / rel).read_text(encoding="utf-8") == text
        assert (CONTRACT / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_generation_when_hash_seed_differs_then_same_bytes() -> None:
    code = (
        "import sys, json; from pathlib import Path; from risk_worker.wire.contract import "
        "render_contract; sys.stdout.write(json.dumps(render_contract(Path(sys.argv[1])"
        ".read_text(encoding='utf-8'))))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "subjects.md")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert json.loads(out) == render_contract(SUBJECTS)


def test_check_when_a_struct_field_is_renamed_then_fails_naming_the_command(
    tmp_path: Path,
) -> None:
    """A temporary copy of the package with one field renamed: `contract --check` against the
    committed files exits 1 and says how to regenerate; the unchanged copy passes."""
    shutil.copytree(
        REPO / "risk_worker", tmp_path / "risk_worker", ignore=shutil.ignore_patterns("__pycache__")
    )
    command = [
        sys.executable, "-m", "risk_worker", "contract",
        "--out", str(CONTRACT), "--subjects", str(REPO / "subjects.md"), "--check",
    ]  # fmt: skip
    env = {**os.environ, "COLUMNS": "400"}

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    unchanged = check()
    assert unchanged.returncode == 0, unchanged.stderr
    outbound = tmp_path / "risk_worker" / "wire" / "outbound.py"
    text = outbound.read_text(encoding="utf-8")
    assert text.count("    processing_time_us: int\n") == 1
    outbound.write_text(text.replace("processing_time_us: int", "processing_time_ns: int"))
    renamed = check()
    assert renamed.returncode == 1, renamed.stdout + renamed.stderr
    message = " ".join(renamed.stderr.split())
    assert "schemas/CheckReplyMsg.json" in message
    assert "asyncapi.yaml" in message
    assert REGENERATE in message


def test_write_when_a_message_is_gone_then_its_schema_file_is_removed(tmp_path: Path) -> None:
    files = render_contract(SUBJECTS)
    write_files(tmp_path, files)
    (tmp_path / "schemas" / "OldMsg.json").write_text("{}")
    assert stale_files(tmp_path, files) == ["schemas/OldMsg.json"]
    assert write_files(tmp_path, files) == ["schemas/OldMsg.json"]
    assert stale_files(tmp_path, files) == []


# -- YAML ---------------------------------------------------------------------------------------


def test_asyncapi_yaml_when_loaded_then_the_document_with_subjects_md_examples() -> None:
    doc = yaml.safe_load((CONTRACT / "asyncapi.yaml").read_text(encoding="utf-8"))
    assert doc["asyncapi"] == "3.0.0"
    messages = doc["components"]["messages"]
    for name, (_, example) in EXAMPLES.items():
        assert messages[name]["examples"][0]["payload"] == example, name
    assert set(STRUCTS) <= set(messages)
    assert set(STRUCTS) <= set(doc["components"]["schemas"])


@pytest.mark.parametrize(
    "value",
    [
        {"a": "yes", "b": "No", "c": "null", "d": "", "e": "1.0", "f": "~", "g": "x: y", "h": "#"},
        {"n": [1e-12, 1e12, -0.5, 0.0, 4102444800000, 1e300, 5e-324, True, None]},
        {"t": "line\nbreak", "u": "≤ \u2028 \x85 é", "v": " lead", "w": "trail ", "x": "-"},
        {"$ref": "#/a", "-": [[1, [2]], [{"k": []}], {}], "empty": {}, "q": "'\"\\"},
        {"3.0.0": {"nested": {"deep": [{"a": 1, "b": {"c": None}}]}}},
    ],
)
def test_to_yaml_when_loaded_by_pyyaml_then_the_same_value(value: dict[str, Any]) -> None:
    text = to_yaml(value)
    assert yaml.safe_load(text) == value
    assert to_yaml(value) == text


def test_to_yaml_when_a_number_is_not_finite_then_refused() -> None:
    with pytest.raises(ValueError, match="not a JSON number"):
        to_yaml({"x": float("inf")})


# -- channels against subjects.md §2 and the code -----------------------------------------------


def test_channels_when_compared_with_the_subject_table_then_the_same() -> None:
    rows = {
        _code(row[0]).replace("<", "{").replace(">", "}"): row for row in _one_table("subject")[1:]
    }
    channels = {c.address: c for c in CHANNELS}
    assert set(channels) == set(rows)
    assert QUEUE_GROUP == nats_service.CHECK_QUEUE
    requests = {nats_service.CHECK_SUBJECT} | {s for _, s, _ in query_endpoints.ENDPOINTS}
    for address, row in rows.items():
        c = channels[address]
        assert ("receive" if row[1] == "in" else "send") in c.actions, address
        assert (c.queue == QUEUE_GROUP) == (f"`{QUEUE_GROUP}`" in row[3]), address
        assert bool(c.replies) == (row[2] == "request/reply") == (address in requests), address
        assert (c.stream == EVENTS_STREAM) == (EVENTS_STREAM in row[2]), address
        documented = set(_codes(row[4])) & set(STRUCTS)
        assert documented == set(c.messages + c.replies) & set(STRUCTS), address


# -- every example validates against its message's schema ---------------------------------------


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_example_when_validated_against_its_schema_then_valid(name: str) -> None:
    heading, example = EXAMPLES[name]
    assert f"({name})" in heading
    assert validate(example, _schema(name)) == [], name
    msgspec.json.decode(json.dumps(example).encode(), type=STRUCTS[name], strict=True)


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        ("CheckRequestMsg", {"quantity": 0}, "exclusiveMinimum"),
        ("CheckRequestMsg", {"symbol": "BTC.USDT"}, "pattern"),
        ("CheckRequestMsg", {"account_id": None}, "anyOf"),
        ("FillMsg", {"timestamp": 1.5}, "type integer"),
        ("CheckReplyMsg", {"approved": "yes"}, "type boolean"),
        ("CheckReplyMsg", {"risk_level": "SEVERE"}, "is not one of"),
        ("BatchRequestMsg", {"orders": []}, "minItems"),
        ("BatchRequestMsg", {"orders": [{"order_id": "o"}]}, "'symbol' is required"),
        ("RiskMetricsMsg", {"position_concentration": {"BTCUSDT": "x"}}, "BTCUSDT"),
        ("ViolationRecord", {"source": "elsewhere"}, "is not one of"),
    ],
)
def test_example_when_broken_then_its_schema_says_where(
    name: str, change: dict[str, Any], expected: str
) -> None:
    example = dict(EXAMPLES[name][1])
    example.update(change)
    if change.get("account_id", "") is None:
        del example["account_id"]
    found = validate(example, _schema(name))
    assert found, f"{name} with {change} validated"
    assert expected in " ".join(found), found
