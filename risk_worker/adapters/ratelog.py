"""Rate-limited logging for repeated problems (bad events arrive in floods)."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """Logs a message per key at most once per ``interval`` seconds, counting the rest.

    Args:
        logger: where to log.
        interval: seconds between two lines of the same key.
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(
        self, key: str, message: str, *args: object, extra: dict[str, str] | None = None
    ) -> None:
        """Log a warning for ``key`` unless one was logged within the interval (``extra``:
        the record's extra fields, e.g. a check's trace)."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message += " (%d similar suppressed)"
            args = (*args, suppressed)
        self._logger.warning(message, *args, extra=extra)
