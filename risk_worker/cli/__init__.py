"""The operator CLI (``risk-worker``): every command and its views, built with typer.

``main`` holds the typer app (the ``risk-worker`` entry point and ``python -m risk_worker``);
``ops`` the NATS commands (check, publish, tail, status, services), ``db`` and ``policies`` the
PostgreSQL ones, ``bench`` the benchmark command, ``status_view`` the tables, ``common`` what the
commands share. Each command is a few lines that call the layers below.

May import: everything else in risk_worker (the service, adapters, wire, domain, the dev stack
and the bench). Nothing imports the CLI but ``risk_worker.__main__``.
"""
