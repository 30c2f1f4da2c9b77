"""`python -m risk_worker` runs the CLI."""

from risk_worker.cli.main import main

main()
