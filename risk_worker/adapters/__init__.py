"""Thin edges, one per technology. Adapters translate; the decision core decides.

NATS (the check responder and event subscriptions, the services protocol, reply-subject guard,
connection options and authentication), the JetStream KV bucket (trading states, the lease,
memberships, the trading-state watcher, the operator's trip and clear), the JetStream event
stream and the PostgreSQL sink, PostgreSQL policies and migrations, Redis snapshots, and the
HTTP health and metrics endpoint.

May import: ``risk_worker.wire``, ``risk_worker.domain``, ``risk_worker.errors`` and each other.
Never the service, the CLI, the dev stack or the bench: what an adapter needs from the running
worker (counters, an audit sink) comes in as an argument typed by a Protocol.
"""
