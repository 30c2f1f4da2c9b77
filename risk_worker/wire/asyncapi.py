"""The AsyncAPI 3.0.0 document of the wire contract, as a plain dict (see ``docs/contract/``).

Channels are the subjects of subjects.md §2 (:data:`~risk_worker.wire.contract_channels.CHANNELS`);
operations are the worker's (``receive`` what it subscribes to, ``send`` what it publishes). A
request/reply subject's reply goes to the requester's own reply subject (an inbox), so its reply
channel has no fixed address (``address: null``). A queue group is the operation's NATS binding
``queue``; a JetStream subject names its stream in ``x-jetstream-stream``. Headers: the services
protocol's error headers on ``invalid_request`` check replies and on query errors, JetStream's
``Nats-Msg-Id`` on the audit records, ``traceparent`` and ``Risk-Detail`` on the check requests.
"""

from __future__ import annotations

import re
from typing import Any

from risk_worker.wire.contract_channels import (
    CHANNELS,
    ERROR_HEADERS,
    ERROR_STATUS,
    MSG_ID_HEADER,
    PARAMETERS,
    STATES_QUERY,
    VAR_RELOAD,
    Channel,
)
from risk_worker.wire.detail import COMPACT, DETAIL_HEADER, FULL
from risk_worker.wire.trace import TRACEPARENT

NATS_BINDING_VERSION = "0.1.0"
DESCRIPTION = (
    "A NATS-native pre-trade risk service. Generated from the msgspec Structs by "
    "`risk-worker contract --out docs/contract/`; the prose contract (units, aliases, reason "
    "codes, rules) is subjects.md. Client rule: no reply, no responders or a timeout means "
    'DENIED; an order is approved only by a reply with "approved": true.'
)
_CODE, _TEXT = ERROR_HEADERS
_TITLES = {STATES_QUERY: "Trading states query", VAR_RELOAD: "VaR reload"}
_NO_PAYLOAD = {
    STATES_QUERY: "Any body (e.g. {}); it is ignored.",
    VAR_RELOAD: "An empty body.",
}
_TRACEPARENT = {
    "type": "string",
    "maxLength": 256,
    "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}",
    "description": "W3C trace context (subjects.md §5.1): optional on a request; a valid one is "
    "echoed on the reply, logged and kept in the check's violation records; a malformed one is "
    "ignored.",
}
_DETAIL = {
    "type": "string",
    "enum": [FULL, COMPACT],
    "description": "How much an approval's reply carries (subjects.md §5.2): full adds the "
    "post-trade metrics; compact (the default) leaves them null. Any other value is "
    "invalid_request.",
}
_TRACE_ONLY = {"type": "object", "properties": {TRACEPARENT: _TRACEPARENT}}
_REQUEST_HEADERS = {
    "type": "object",
    "properties": {TRACEPARENT: _TRACEPARENT, DETAIL_HEADER: _DETAIL},
}
_HEADERS: dict[str, dict[str, Any]] = {
    "CheckRequestMsg": _REQUEST_HEADERS,
    "BatchRequestMsg": _REQUEST_HEADERS,
    "BatchReplyMsg": _TRACE_ONLY,
    "CheckReplyMsg": {
        "type": "object",
        "description": "The services error headers only on an invalid_request denial "
        "(subjects.md §5); traceparent when the request carried a valid one (§5.1).",
        "properties": {
            _CODE: {"type": "string", "enum": ["400"]},
            _TEXT: {"type": "string", "maxLength": 512, "description": "<field>: <detail>"},
            TRACEPARENT: _TRACEPARENT,
        },
    },
    "QueryErrorMsg": {
        "type": "object",
        "description": "The NATS services protocol's error headers (subjects.md §5).",
        "properties": {
            _CODE: {"type": "string", "enum": sorted(set(ERROR_STATUS.values()))},
            _TEXT: {"type": "string", "description": "<error>: <message>"},
        },
        "required": [_CODE, _TEXT],
    },
    **{
        record: {
            "type": "object",
            "description": "JetStream de-duplication: the record's id (subjects.md §10).",
            "properties": {MSG_ID_HEADER: {"type": "string"}},
            "required": [MSG_ID_HEADER],
        }
        for record in ("ViolationRecord", "StateChangeRecord")
    },
}


def _example_headers(name: str, payload: Any) -> dict[str, str] | None:
    if name == "QueryErrorMsg":
        error = payload["error"]
        return {_CODE: ERROR_STATUS[error], _TEXT: f"{error}: {payload['message']}"}
    if name in ("ViolationRecord", "StateChangeRecord"):
        return {MSG_ID_HEADER: payload["id"]}
    return None


def _title(name: str, example: tuple[str, Any] | None) -> str:
    """``Fill`` of the heading ``3.2 Fill (FillMsg)``; the name without a section."""
    if example is None:
        return _TITLES.get(name, name)
    return re.sub(r"^[0-9.]+\s+", "", example[0]).removesuffix(f" ({name})")


def _message(name: str, example: tuple[str, Any] | None, has_schema: bool) -> dict[str, Any]:
    title = _title(name, example)
    message: dict[str, Any] = {"name": name, "title": title, "contentType": "application/json"}
    if name in _HEADERS:
        message["headers"] = _HEADERS[name]
    if has_schema:
        message["payload"] = {"$ref": f"#/components/schemas/{name}"}
    else:
        message["summary"] = _NO_PAYLOAD[name]
    if example is not None:
        heading, payload = example
        section = heading.split(" ", 1)[0]
        entry: dict[str, Any] = {
            "name": "subjects_md",
            "summary": f"subjects.md §{section} {title}",
        }
        headers = _example_headers(name, payload)
        if headers is not None:
            entry["headers"] = headers
        entry["payload"] = payload
        message["examples"] = [entry]
    return message


def _refs(channel: str, names: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in names]


def _channels(c: Channel) -> dict[str, dict[str, Any]]:
    channel: dict[str, Any] = {"address": c.address, "summary": c.summary}
    channel["messages"] = {m: {"$ref": f"#/components/messages/{m}"} for m in c.messages}
    params = [p for p in PARAMETERS if "{" + p + "}" in c.address]
    if params:
        channel["parameters"] = {p: PARAMETERS[p] for p in params}
    if c.stream is not None:
        channel["x-jetstream-stream"] = c.stream
    out = {c.key: channel}
    if c.replies:
        out[c.key + "Reply"] = {
            "address": None,
            "summary": f"The reply to {c.address}, on the requester's reply subject (an "
            "accepted inbox prefix, subjects.md §2).",
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in c.replies},
        }
    return out


def _operations(c: Channel) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for action in c.actions:
        op: dict[str, Any] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{c.key}"},
            "summary": c.summary,
            "messages": _refs(c.key, c.messages),
        }
        if c.replies:
            op["reply"] = {
                "channel": {"$ref": f"#/channels/{c.key}Reply"},
                "messages": _refs(c.key + "Reply", c.replies),
            }
        if c.queue is not None:
            op["bindings"] = {"nats": {"queue": c.queue, "bindingVersion": NATS_BINDING_VERSION}}
        elif action == "receive":
            op["description"] = "Every instance receives every message (no queue group)."
        out[action + c.key[0].upper() + c.key[1:]] = op
    return out


def asyncapi_document(
    schemas: dict[str, Any],
    examples: dict[str, tuple[str, Any]],
    with_schema: set[str],
    version: str,
) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document.

    Args:
        schemas: the JSON Schemas of the messages and what they use, by name, referencing one
            another as ``#/components/schemas/<name>``.
        examples: message name → (subjects.md heading, example payload).
        with_schema: the messages whose payload is ``schemas[name]`` (the others have none).
        version: the package version (``info.version``).
    """
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    names: set[str] = set()
    for c in CHANNELS:
        channels.update(_channels(c))
        operations.update(_operations(c))
        names.update(c.messages, c.replies)
    messages = {n: _message(n, examples.get(n), n in with_schema) for n in sorted(names)}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "risk-worker", "version": version, "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "risk-worker dev (RISK_NATS_URL elsewhere).",
            }
        },
        "channels": dict(sorted(channels.items())),
        "operations": dict(sorted(operations.items())),
        "components": {"messages": messages, "schemas": schemas},
    }
