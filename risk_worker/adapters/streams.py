"""Binding the worker's JetStream streams (``RISK_EVENTS``, ``RISK_INPUTS``) to their settings.

One mechanism for both: the stream is created when missing (a concurrent creator winning is
fine), and an existing one is updated to the configured max age and replica count. A replica
count the server refuses to change (e.g. 3 on a server outside a cluster) keeps the stream's own
count, with a warning naming the setting and both counts; a stream that cannot be created at all
stops the start naming the setting.
"""

from __future__ import annotations

import dataclasses
import logging

import nats.js.errors
from nats.js import api
from nats.js.client import JetStreamContext

from risk_worker.errors import ServerUnavailableError

log = logging.getLogger(__name__)


async def bind_stream(
    js: JetStreamContext, config: api.StreamConfig, replicas_setting: str
) -> api.StreamInfo:
    """Create or update the stream ``config.name`` to ``config``; returns its info now.

    Args:
        js: JetStream context.
        config: the stream as configured (name, subjects, storage, max age, replicas, ...).
        replicas_setting: the variable behind ``config.num_replicas``, for messages
            (e.g. ``RISK_EVENTS_REPLICAS``).

    Raises:
        ServerUnavailableError: the stream can be neither read nor created (naming the setting).
        nats.errors.Error: NATS failed otherwise.
    """
    name, replicas = config.name, config.num_replicas or 1
    assert name is not None
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        try:
            return await js.add_stream(config)
        except nats.js.errors.APIError as exc:  # a concurrent creator won, or a refusal
            try:
                info = await js.stream_info(name)
            except nats.js.errors.NotFoundError:
                raise ServerUnavailableError(
                    f"cannot create the {name} stream with {replicas} replica(s) "
                    f"({replicas_setting}): {exc.description or exc!r}"
                ) from exc
    have = info.config.num_replicas or 1
    if info.config.max_age == config.max_age and have == replicas:
        return info
    try:
        updated = await js.update_stream(config)
    except nats.js.errors.APIError as exc:
        if have == replicas:
            raise
        log.warning(
            "the %s stream has %d replica(s) and %s is %d, but the server refused the change "
            "(%s): the stream keeps %d",
            name,
            have,
            replicas_setting,
            replicas,
            exc.description or repr(exc),
            have,
        )
        if info.config.max_age != config.max_age:
            return await js.update_stream(dataclasses.replace(config, num_replicas=have))
        return info
    if have != replicas:
        log.info("the %s stream now has %d replica(s) (was %d)", name, replicas, have)
    return updated
