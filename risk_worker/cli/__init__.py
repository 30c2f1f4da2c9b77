"""The operator CLI (``risk-worker``): every command and its views, built with typer.

``main`` holds the typer app (the ``risk-worker`` entry point and ``python -m risk_worker``);
``check`` and ``tail`` are NATS commands of their own, ``ops`` the others (publish, status,
services), ``db`` and ``policies`` the PostgreSQL ones, ``bench`` the benchmark command,
``status_view`` the status tables, ``common`` what the commands share (the consoles too).
Each command is a few lines that call the layers below.

May import: everything else in risk_worker (the client, the service, adapters, wire, domain,
the dev stack and the bench). ``check`` asks through :mod:`risk_worker.client`. Nothing
imports the CLI but ``risk_worker.__main__``.
"""
