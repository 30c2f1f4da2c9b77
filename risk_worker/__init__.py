"""risk-worker: a NATS-native, event-driven pre-trade risk service."""

from importlib.metadata import PackageNotFoundError, version

from risk_worker import _core

_core.activate()  # before any risk_worker.domain module is imported: picks the decision core

try:
    __version__ = version("risk-worker")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
