"""compose.yaml and docker/nats-server.conf agree on the inbox prefixes (subjects.md §2).

The real server enforcing them: tests/integration/test_nats_inboxes.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from risk_worker.service.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "docker" / "nats-server.conf"


def settings_of(service: str) -> Settings:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    env = compose["services"][service]["environment"]
    wanted = {"RISK_NATS_INBOX_PREFIX", "RISK_REPLY_PREFIXES"}
    return load_settings({k: str(v) for k, v in env.items() if k in wanted})


def conf_lines() -> list[str]:
    """docker/nats-server.conf without comments."""
    text = CONF.read_text(encoding="utf-8")
    return [line.split("#", 1)[0].strip() for line in text.splitlines()]


def test_compose_gives_the_worker_and_the_cli_their_own_inbox_prefixes() -> None:
    worker, cli = settings_of("risk-worker"), settings_of("cli")
    assert worker.nats_auth.inbox_prefix == "_INBOX_worker"
    assert cli.nats_auth.inbox_prefix == "_INBOX_operator"
    assert worker.reply_prefixes == ("_INBOX_client.", "_INBOX_operator.")


def test_worker_may_publish_replies_only_into_the_prefixes_it_answers() -> None:
    lines = conf_lines()
    assert not any("allow_responses" in line for line in lines)
    for prefix in settings_of("risk-worker").reply_prefixes:
        assert f'"{prefix}>",' in lines, prefix
    # The worker's lists hold one item a line: its reply prefixes (publish), its own (subscribe).
    inbox_items = {line for line in lines if line.startswith('"_INBOX')}
    assert inbox_items == {'"_INBOX_client.>",', '"_INBOX_operator.>",', '"_INBOX_worker.>",'}
    assert 'allow: ["risk.>", "_INBOX_operator.>"]' in lines  # the operator's subscriptions
