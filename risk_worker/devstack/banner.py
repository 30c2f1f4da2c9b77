"""What `risk-worker dev` prints once the servers run: the `export` lines, then commands to try.

Every other command reads its servers from ``RISK_*`` variables: ``check``, ``publish``,
``tail``, ``emergency`` and ``status`` need ``RISK_NATS_URL`` (when not the default),
``policies`` and ``db`` need ``RISK_DATABASE_URL``, and ``status`` reads the account table
from Redis with ``RISK_REDIS_URL``. The banner gives each as a line to paste into a shell.
"""

from __future__ import annotations

import shlex

from risk_worker.service.settings import Settings, redact

_TRY = """\
then try:
  risk-worker tail &                     # watch risk.> (metrics, alerts)
  risk-worker publish pnl.update '{"account_id": "ACC1", "balance": 100000}'
  risk-worker publish market.tick.BTCUSDT '{"price": 60000}'
  risk-worker check --account ACC1 --symbol BTCUSDT --side buy --quantity 0.1 --price 60000
  risk-worker status                     # instances, trading states, accounts (Redis)
  risk-worker policies list              # needs RISK_DATABASE_URL, as do db status / db migrate
Ctrl-C stops the worker and the embedded servers.
"""


def export_lines(settings: Settings) -> list[str]:
    """``export RISK_NATS_URL=…``, ``RISK_DATABASE_URL`` and ``RISK_REDIS_URL`` lines.

    A URL holding a password (one the user set, never one `dev` made) is not printed: its line
    is a comment saying it is taken from the user's own variable.

    Args:
        settings: the settings the worker runs with (the servers' URLs filled in).

    Returns:
        One shell line per variable, values quoted for a POSIX shell.
    """
    lines = []
    for variable, url in (
        ("RISK_NATS_URL", settings.nats_url),
        ("RISK_DATABASE_URL", settings.database_url),
        ("RISK_REDIS_URL", settings.redis_url),
    ):
        if redact(url) != url:
            lines.append(f"# {variable}: as set in your shell ({redact(url)})")
        else:
            lines.append(f"export {variable}={shlex.quote(url)}")
    return lines


def banner(settings: Settings) -> str:
    """The text printed before the worker starts (plain text, no markup).

    Args:
        settings: the worker's settings (the servers' URLs filled in).
    """
    head = (
        "\nrisk-worker is starting. In another terminal, point the commands at these servers "
        "first:\n"
        "  source .venv/bin/activate\n"
    )
    exports = "".join(f"  {line}\n" for line in export_lines(settings))
    return head + exports + _TRY
