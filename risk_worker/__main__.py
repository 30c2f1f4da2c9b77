"""`python -m risk_worker` runs the CLI."""

from risk_worker.cli import main

main()
