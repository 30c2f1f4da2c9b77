"""Which reply subjects the worker answers: only inboxes, never a ``$`` subject.

A requester chooses the reply subject, and the worker publishes its answer there with its own
permissions. A request with reply ``$KV.risk_control.trading_state.global`` would have the
worker write its reply into the trading-state bucket, where it reads as HALTED (an undecodable
value fails closed) and stops all trading; an account key works the same way, and a reply on
``risk.alerts.emergency`` would be a forged alert. So the worker answers only reply subjects
under an accepted inbox prefix (``_INBOX.`` and ``RISK_REPLY_PREFIXES``); every other request
is dropped unanswered, counted in ``risk_requests_dropped_total{reason}`` and logged
(rate-limited). A dropped check is not decided: it reserves nothing and records nothing.

Rule source: issue 10 ("The gate never fails open"), item 2; subjects.md §2.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg

from risk_worker.adapters.ratelog import RateLimitedLog

log = logging.getLogger(__name__)

DEFAULT_INBOX_PREFIX = "_INBOX."
"""nats-py's (and every NATS client's) default inbox prefix, always accepted."""
MAX_LOGGED_SUBJECT = 200
"""Characters of a refused reply subject that are logged (the requester chose it)."""


class ReplyGuard:
    """Tells whether a request's reply subject may be answered; counts and logs the others.

    The accepted test is one ``str.startswith`` over a tuple of prefixes (the check path is
    hot); the reason of a refusal is worked out only for the refused.

    Args:
        prefixes: accepted inbox prefixes besides ``_INBOX.``, each ending with ``.`` and not
            starting with ``$`` (``Settings.reply_prefixes``, validated there).
        on_drop: called with the reason (``no_reply``, ``system_subject`` or
            ``not_an_inbox``, see ``observability.DROP_REASONS``) of each dropped request.

    Raises:
        ValueError: a prefix starts with ``$`` or does not end with ``.``.
    """

    def __init__(self, prefixes: tuple[str, ...], on_drop: Callable[[str], None]) -> None:
        for prefix in prefixes:
            if prefix.startswith("$") or not prefix.endswith("."):
                raise ValueError(f"reply prefix {prefix!r} must end with '.', not start with '$'")
        self.prefixes: tuple[str, ...] = tuple(dict.fromkeys((DEFAULT_INBOX_PREFIX, *prefixes)))
        self._on_drop = on_drop
        self._ratelog = RateLimitedLog(log)

    def accepts(self, reply: str, what: str) -> bool:
        """True when ``reply`` is under an accepted inbox prefix; else counts, logs, False.

        Args:
            reply: the request's reply subject (``""`` when it has none).
            what: what was asked, for the log line (``risk.check.order``, ``$SRV.PING`` ...).
        """
        if reply.startswith(self.prefixes):
            return True
        if not reply:
            reason = "no_reply"
        elif reply.startswith("$"):
            reason = "system_subject"
        else:
            reason = "not_an_inbox"
        self._on_drop(reason)
        self._ratelog.warning(
            reason,
            "dropped a %s request (%s): reply subject %r is not under an accepted inbox prefix"
            " (%s)",
            what,
            reason,
            reply[:MAX_LOGGED_SUBJECT],
            ", ".join(self.prefixes),
        )
        return False

    def guard(
        self, handler: Callable[[Msg], Awaitable[None]], what: str
    ) -> Callable[[Msg], Awaitable[None]]:
        """``handler`` called only for messages whose reply subject is accepted."""

        async def guarded(msg: Msg) -> None:
            if self.accepts(msg.reply, what):
                await handler(msg)

        return guarded
