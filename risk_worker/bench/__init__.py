"""The benchmark: the worker against a bare echo responder (the floor) over a real nats-server,
and the in-process microbenchmark of the check path (``core``).

May import: ``risk_worker.devstack`` (its own nats-server), ``risk_worker.service``,
``risk_worker.adapters``, ``risk_worker.wire``, ``risk_worker.domain`` and
``risk_worker.errors``. Never the CLI (the ``bench`` command lives in ``risk_worker.cli.bench``).
"""
