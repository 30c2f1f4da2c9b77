"""The decision core: pure, synchronous risk math and rules.

Lives here: the account book (positions, balances, reservations, marks and the suspect-tick
gate), the metrics (exposure, margin, leverage, drawdown, concentration), the order check,
policies, the trading-state copy and its rules, the monitor's evaluation, the circuit breaker,
alert de-duplication, numeric bounds and what a snapshot holds.

May import: the standard library (no asyncio, logging, time or I/O) and msgspec; nothing else of
risk_worker. Nothing in this package does I/O, reads a clock, logs or uses asyncio; time comes
in as an argument (milliseconds since the Unix epoch). Adapters translate wire messages into
the calls made here and act on what these functions return.
"""
