"""The decision core: pure, synchronous risk math and rules.

Nothing in this package does I/O, reads a clock, logs or uses asyncio; time comes in as an
argument (milliseconds since the Unix epoch). Adapters translate wire messages into the calls
made here and act on what these functions return.
"""
