"""The running worker: settings, wiring and lifecycle, background tasks, observability.

``worker`` connects in order, starts the tasks, drains NATS on SIGTERM so in-flight checks are
answered, and closes in reverse order (``startup`` retries its JetStream steps while JetStream
is unavailable); ``monitor_task``, ``policy_task`` and ``snapshot_task``
are its background loops; ``settings`` reads and validates ``RISK_*``; ``observability`` holds
the Prometheus metrics; ``logs`` the JSON log format; ``policy_source`` where policies come from.

May import: ``risk_worker.adapters``, ``risk_worker.wire``, ``risk_worker.domain`` and
``risk_worker.errors``. Never the CLI, the dev stack or the bench.
"""
