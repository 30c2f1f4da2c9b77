"""``startup_step``: which start-up errors are asked again, for how long, and what ends the
start. The step here is a plain coroutine that raises what nats-py raises; the same retry over a
real cluster without a leader is tests/integration/test_startup_retry.py."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from risk_worker.errors import ServerUnavailableError, TradingStateError
from risk_worker.service.startup import startup_step, transient


class Step:
    """Raises ``errors`` in turn, then returns ``"done"``; counts its calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors, self.calls = list(errors), 0

    async def __call__(self, arg: str) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return f"done {arg}"


def wrapped(cause: BaseException) -> TradingStateError:
    """What open_bucket raises: its own error, from nats-py's."""
    try:
        raise TradingStateError(f"cannot bind KV bucket 'b': {cause!r}") from cause
    except TradingStateError as exc:
        return exc


def api_error(err_code: int, description: str) -> nats.js.errors.APIError:
    return nats.js.errors.APIError(code=503, err_code=err_code, description=description)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (nats.errors.TimeoutError(), True),
        (TimeoutError(), True),
        (wrapped(nats.errors.TimeoutError()), True),
        (api_error(10008, "JetStream system temporarily unavailable"), True),
        (api_error(10005, "no suitable peers for placement, peer offline"), True),
        (api_error(10005, "no suitable peers for placement"), False),
        (nats.js.errors.ServiceUnavailableError(), False),  # no responders: no JetStream
        (nats.errors.NoRespondersError(), False),
        (api_error(10074, "replicas > 1 not supported in non-clustered mode"), False),
        (wrapped(api_error(10071, "wrong last sequence")), False),
        (ValueError("bad"), False),
    ],
)
def test_transient_when_error_then_only_unavailability(exc: BaseException, expected: bool) -> None:
    assert transient(exc) is expected


async def test_step_when_unavailable_twice_then_third_attempt_returns() -> None:
    step = Step(
        nats.errors.TimeoutError(),
        wrapped(api_error(10008, "JetStream system temporarily unavailable")),
    )
    assert await startup_step("the bucket", step, "x") == "done x"
    assert step.calls == 3


async def test_step_when_refused_then_one_attempt_and_one_line_naming_the_step() -> None:
    step = Step(api_error(10074, "replicas > 1 not supported in non-clustered mode"))
    with pytest.raises(ServerUnavailableError, match=r"cannot set up RISK_EVENTS: .*10074") as e:
        await startup_step("RISK_EVENTS", step, "x")
    assert "retried" not in str(e.value)
    assert step.calls == 1


async def test_step_when_own_error_then_passed_through_unchanged() -> None:
    refusal = ServerUnavailableError("cannot create the RISK_INPUTS stream (RISK_INPUTS_REPLICAS)")
    step = Step(refusal)
    with pytest.raises(ServerUnavailableError) as e:
        await startup_step("RISK_INPUTS", step, "x")
    assert e.value is refusal
    assert step.calls == 1


async def test_step_when_unavailable_past_the_deadline_then_last_error_says_retried() -> None:
    step = Step(*[nats.errors.TimeoutError() for _ in range(1000)])
    with pytest.raises(ServerUnavailableError, match=r"the watcher: .*retried for 0.5 s"):
        await startup_step("the watcher", step, "x", retry_for=0.5)
    assert 2 <= step.calls < 1000
