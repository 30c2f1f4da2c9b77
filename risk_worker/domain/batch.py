"""A batch of orders of one account, decided in one go (``risk.check.batch``).

The orders are checked in their order, each against the book *with the earlier ones
reserved* (an approved order reserves its headroom before the next is checked, as separate
checks would). With ``all_or_none``, one denial denies the whole batch: every reservation the
batch made is rolled back (a reservation an order replaced, a re-check of a live order id, is
put back) and the orders that passed are denied ``batch_denied`` naming the first denial.

Synchronous and pure: the adapter calls it between two awaits, so the batch is atomic with
respect to other checks and events (no other check sees a reservation that is rolled back).
The order-rate throttle counts every order of the batch, denied or rolled back, as it counts
denied single checks (subjects.md §8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from risk_worker.domain.book import AccountBook
from risk_worker.domain.order import Decision, Order, deny
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.types import DenyReason


class BatchOutcome(msgspec.Struct, gc=False):
    """The decisions of a batch, in the order of its orders; ``approved`` when every one is."""

    decisions: list[Decision]
    approved: bool


def check_batch(
    orders: Sequence[Order],
    book: AccountBook,
    check: Callable[[Order], Decision],
    all_or_none: bool,
) -> BatchOutcome:
    """Decide ``orders`` (one account) in order; roll back on a denial with ``all_or_none``.

    Args:
        orders: the batch, every order of the same account (1 or more).
        book: the account book the reservations are made in.
        check: decides one order and reserves its headroom when approved
            (:meth:`~risk_worker.domain.engine.RiskEngine.check` at one ``now_ms``).
        all_or_none: one denial denies every order and reserves nothing.

    Returns:
        One decision per order. Under ``all_or_none`` with a denial, the orders that passed
        are denied ``batch_denied`` (their own checks' warnings and utilization kept) and no
        reservation of the batch is left.

    Raises:
        ValueError: the batch is empty or names more than one account.
    """
    if not orders:
        raise ValueError("a batch needs at least one order")
    account_id = orders[0].account_id
    if any(o.account_id != account_id for o in orders):
        raise ValueError("every order of a batch must be of the same account")
    undo: list[tuple[str, PendingOrder | None]] = []
    decisions: list[Decision] = []
    for order in orders:
        acct = book.accounts.get(account_id)
        replaced = None if acct is None else acct.pending.get(order.order_id)
        decision = check(order)
        decisions.append(decision)
        if decision.reservation is not None:
            undo.append((order.order_id, replaced))
    approved = all(d.approved for d in decisions)
    if approved or not all_or_none:
        return BatchOutcome(decisions, approved)
    acct = book.accounts.get(account_id)
    if acct is not None:
        for order_id, replaced in reversed(undo):
            if replaced is None:
                acct.pending.discard(order_id)
            else:
                acct.pending.add(replaced)
    first = next(i for i, d in enumerate(decisions) if not d.approved)
    cause = decisions[first]
    why = f"{cause.reason.value if cause.reason else 'denied'}: {cause.message}"
    message = f"denied with its all-or-none batch: order {orders[first].order_id} was {why}"
    for i, d in enumerate(decisions):
        if d.approved:
            denial = deny(DenyReason.BATCH_DENIED, message, state=d.trading_state)
            denial.warnings = d.warnings
            denial.utilization = d.utilization
            decisions[i] = denial
    return BatchOutcome(decisions, False)
