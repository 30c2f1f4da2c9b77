"""The wire contract: one msgspec Struct per message, in and out (mirrors subjects.md).

- ``inbound``: the messages the worker receives (checks, positions, fills, PnL, ticks,
  reservations), parsed and bounded into the decision core's types, or refused naming the field;
- ``outbound``: check replies, ``risk.metrics``, ``risk.alerts.*``, state changes;
- ``audit``: the violation and trading-state records of the ``RISK_EVENTS`` stream, and the
  ``RiskEventSink`` protocol that receives them.
- ``contract`` (with ``asyncapi``, ``contract_channels``, ``contract_text``): the AsyncAPI 3.0
  document and one JSON Schema per message, generated from these Structs (``docs/contract/``).

May import: ``risk_worker.domain``, ``risk_worker.errors`` and the package root (its version);
never adapters, the service, the CLI, the dev stack or the bench.
"""
