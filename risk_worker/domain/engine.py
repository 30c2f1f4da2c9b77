"""RiskEngine: the decision core's state in one object, with the calls adapters make.

Synchronous and single-threaded: the NATS adapter calls it from one event loop, never across an
await, so a check and its reservation are atomic with respect to other checks and events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from risk_worker.domain.batch import BatchOutcome, check_batch
from risk_worker.domain.book import AccountBook
from risk_worker.domain.book_events import Fill, PnlSnapshot, PositionSnapshot
from risk_worker.domain.controls import OrderRates
from risk_worker.domain.decision import check_order
from risk_worker.domain.guards import AlertDeduper, CircuitBreaker
from risk_worker.domain.mark import Mark
from risk_worker.domain.marks import HeldTick, MarkTable
from risk_worker.domain.metrics import compute_metrics
from risk_worker.domain.monitor import assess_account, evaluate_account
from risk_worker.domain.order import Decision, Order, deny
from risk_worker.domain.pending import PendingOrder
from risk_worker.domain.policies import Policy
from risk_worker.domain.policy_set import PolicySet
from risk_worker.domain.reports import AccountReport, Assessment, Trip
from risk_worker.domain.returns import ReturnHistory
from risk_worker.domain.risk_config import RiskConfig
from risk_worker.domain.risk_metrics import AccountMetrics
from risk_worker.domain.strategy_monitor import assess_strategies
from risk_worker.domain.trading_state import (
    ACCOUNT,
    STRATEGY,
    SYMBOL,
    StateValue,
    TradingStates,
    auto_key,
    auto_strategy_key,
)
from risk_worker.domain.types import ApplyResult, TickResult, TradingState
from risk_worker.domain.vocab import (
    DENY_REASON_BOOK_REPLAYING,
    TICK_RESULT_APPLIED,
    TRADING_STATE_ACTIVE,
    TRADING_STATE_REDUCING,
)


class RiskEngine:
    """Book, policies, trading states, breaker and alert de-duplication of one worker.

    Args:
        config: risk parameters.
        breaker_threshold: hard violations that trip an account (count).
        breaker_window_ms: the breaker's window (ms).
        alert_dedup_window_ms: minimum spacing of the same (account, policy) alert, and of
            the suspect-tick alerts of one symbol (ms).
        worker_id: recorded as ``updated_by`` of this worker's automatic trips.
        tick_max_jump: relative move from a fresh mark beyond which a tick is suspect
            (fraction; see :class:`~risk_worker.domain.marks.MarkTable`).
        tick_confirmations: consecutive ticks that confirm a suspect level (count).
        max_symbols: most symbols the mark table holds (count).
        auto_trip_state: the state an automatic trip sets, REDUCING (strictly reducing orders
            still pass) or HALTED.

    Raises:
        ValueError: ``auto_trip_state`` is ACTIVE.
    """

    def __init__(
        self,
        config: RiskConfig,
        *,
        breaker_threshold: int = 5,
        breaker_window_ms: int = 60_000,
        alert_dedup_window_ms: int = 300_000,
        worker_id: str = "risk-worker",
        tick_max_jump: float = 0.25,
        tick_confirmations: int = 3,
        max_symbols: int = 10_000,
        auto_trip_state: TradingState = TRADING_STATE_REDUCING,
    ) -> None:
        if auto_trip_state is TRADING_STATE_ACTIVE:
            raise ValueError("an automatic trip must set REDUCING or HALTED")
        self.auto_trip_state = auto_trip_state
        self.config = config
        self.worker_id = worker_id
        self.book = AccountBook(ReturnHistory(config.var.sample_interval_ms, config.var.window))
        self.marks = MarkTable(
            self.book.marks,
            max_jump=tick_max_jump,
            confirmations=tick_confirmations,
            max_symbols=max_symbols,
            mark_max_age_ms=config.mark_max_age_ms,
            alert_window_ms=alert_dedup_window_ms,
        )
        self.states = TradingStates()
        self.policies: PolicySet | None = None
        self.breaker = CircuitBreaker(breaker_threshold, breaker_window_ms)
        self.deduper = AlertDeduper(alert_dedup_window_ms)
        self.rates = OrderRates()
        self.book_replaying = False
        """True while the book is rebuilt from ``RISK_INPUTS`` at start: every check is denied
        ``book_replaying`` until the replay has caught up."""

    def load_policies(self, policies: Iterable[Policy]) -> PolicySet:
        """Replace the policy set (prepared once here, not per check).

        Raises:
            PolicyError: a policy is invalid; the previous set stays in force.
        """
        self.policies = PolicySet(policies)
        return self.policies

    def check(
        self, order: Order, now_ms: int, state_confirmed: bool, detail: bool = True
    ) -> Decision:
        """The pre-trade check (see :func:`~risk_worker.domain.decision.check_order`, and its
        ``detail``); denied ``book_replaying`` while the book is being rebuilt at start."""
        if self.book_replaying:
            return deny(DENY_REASON_BOOK_REPLAYING, "the book is being rebuilt from RISK_INPUTS")
        return check_order(
            order,
            self.book,
            self.policies,
            self.states,
            state_confirmed,
            self.config,
            now_ms,
            self.rates,
            detail,
        )

    def check_batch(
        self, orders: Sequence[Order], now_ms: int, state_confirmed: bool, all_or_none: bool
    ) -> BatchOutcome:
        """Check one account's orders in order, each with the earlier ones reserved; with
        ``all_or_none`` one denial denies all and reserves nothing
        (:func:`~risk_worker.domain.batch.check_batch`; ValueError for an empty batch or
        several accounts)."""
        return check_batch(
            orders,
            self.book,
            lambda order: self.check(order, now_ms, state_confirmed),
            all_or_none,
        )

    def apply_position(self, event: PositionSnapshot) -> ApplyResult:
        """Apply ``positions.update``."""
        return self.book.apply_position(event)

    def apply_fill(self, event: Fill) -> ApplyResult:
        """Apply ``fills.confirmed``."""
        return self.book.apply_fill(event)

    def apply_pnl(self, event: PnlSnapshot) -> ApplyResult:
        """Apply ``pnl.update``."""
        return self.book.apply_pnl(event)

    def remember_fill(self, account_id: str, fill_id: str) -> None:
        """Remember a fill the account's restored state already includes (a replay skips it):
        a repeat of it is then DUPLICATE, as it would have been without the restart. Nothing
        for an account the book does not hold."""
        acct = self.book.accounts.get(account_id)
        if acct is not None:
            acct.remember_fill(fill_id)

    def apply_reservation(self, account_id: str, reservation: PendingOrder) -> None:
        """Apply a reservation another instance made, so this one does not spend the same
        headroom (the same order id replaces: a re-check through another instance)."""
        self.book.account(account_id).pending.add(reservation)

    def release_reservations(
        self, scope: str, scope_id: str | None, account_id: str | None = None
    ) -> int:
        """Drop the reservations a HALT of ``scope`` cancels: every account's (global), one
        account's, every account's of one strategy or symbol, or one account's of one strategy
        (an automatic trip of the strategy on the account). Returns how many.

        Args:
            scope: ``global``, ``account``, ``strategy`` or ``symbol``
                (:data:`~risk_worker.domain.trading_state.WIRE_SCOPE`).
            scope_id: the account id, strategy id or symbol; None for ``global``.
            account_id: with the ``strategy`` (or ``symbol``) scope, only this account's
                reservations of it; None for every account's.
        """
        accounts = self.book.accounts
        if scope == ACCOUNT:
            acct = accounts.get(scope_id or "")
            return 0 if acct is None else acct.pending.release()
        symbol = scope_id if scope == SYMBOL else None
        strategy_id = scope_id if scope == STRATEGY else None
        if account_id is not None:
            acct = accounts.get(account_id)
            return 0 if acct is None else acct.pending.release(symbol, strategy_id)
        return sum(a.pending.release(symbol, strategy_id) for a in accounts.values())

    def set_mark(self, symbol: str, price: float, timestamp: int, now_ms: int) -> TickResult:
        """Apply ``market.tick.<symbol>`` (price already chosen: last, else mid) through the
        suspect-tick filter and the symbol limit; what was done is returned.

        The mark in force before the tick is sampled at the VaR boundaries it covered
        (:meth:`~risk_worker.domain.returns.ReturnHistory.carry`); a mark applied exactly at a
        boundary is that boundary's sample.
        """
        marks = self.book.marks
        before = marks.get(symbol)
        returns = self.book.returns
        if before is not None:
            returns.carry(symbol, before.price, before.received_ms, now_ms)
        result = self.marks.offer(symbol, price, timestamp, now_ms)
        if now_ms % returns.interval_ms == 0:
            after = marks.get(symbol)
            if after is not None and after is not before:
                returns.carry(symbol, after.price, now_ms, now_ms + 1)
        return result

    def set_marks(
        self, ticks: Iterable[tuple[str, float, int | None]], now_ms: int
    ) -> list[HeldTick]:
        """Apply ticks received by ``now_ms`` (symbol, price, source timestamp in ms or None
        for ``now_ms``), in order: exactly :meth:`set_mark` on each in turn.

        The common case is done inline, without the calls: the symbol has a mark, received
        after the last VaR boundary before ``now_ms`` (no sample due), the tick is within the
        jump band of it, no suspect level is pending anywhere and ``now_ms`` is not a boundary
        itself. Such a tick is applied whether the mark is fresh or stale, so it simply
        replaces the mark. Every other tick goes through :meth:`set_mark`.

        Returns:
            The ticks not simply APPLIED (confirmed, suspect, refused), in order, with the
            symbol's mark price just after each.
        """
        marks = self.book.marks
        table = self.marks
        step = self.book.returns.interval_ms
        settled = (now_ms - 1) // step * step + 1  # a mark received since: no sample due
        max_jump = table.max_jump
        on_boundary = now_ms % step == 0
        quiet = not on_boundary and not table.holds_suspects()
        held_ticks: list[HeldTick] = []
        for symbol, price, timestamp in ticks:
            stamp = now_ms if timestamp is None else timestamp
            if quiet:
                held = marks.get(symbol)
                if held is not None and held.received_ms >= settled:
                    reference = held.price
                    if abs(price - reference) <= max_jump * reference:
                        marks[symbol] = Mark(price, now_ms, stamp)
                        continue
            result = self.set_mark(symbol, price, stamp, now_ms)
            quiet = not on_boundary and not table.holds_suspects()
            if result is not TICK_RESULT_APPLIED:
                after = marks.get(symbol)
                mark = None if after is None else after.price
                held_ticks.append(HeldTick(symbol, price, result, mark))
        return held_ticks

    def sample_marks(self, now_ms: int) -> int:
        """Sample every mark at the VaR boundaries up to ``now_ms`` (the sampling task calls it
        just after each boundary, then rebuilds the stale aligned vectors); returns how many
        samples were recorded."""
        return self.book.returns.sample_marks(self.book.marks, now_ms)

    def known_accounts(self) -> list[str]:
        """Accounts seen through ``pnl.update`` or ``positions.update``."""
        return [a for a, acct in self.book.accounts.items() if acct.known]

    def metrics(self, account_id: str, now_ms: int) -> AccountMetrics | None:
        """Current metrics of a known account, None otherwise."""
        acct = self.book.accounts.get(account_id)
        if acct is None or not acct.known:
            return None
        return compute_metrics(acct, self.book.marks, self.config, now_ms)

    def assess(self, account_id: str, now_ms: int) -> Assessment | None:
        """A known account's metrics, utilization, violations and level, and its strategies';
        None otherwise.

        Changes nothing (no breaker hit, no alert de-duplication): for snapshots and status.
        """
        acct = self.book.accounts.get(account_id)
        policies = self.policies
        if acct is None or not acct.known or policies is None:
            return None
        a = assess_account(acct, self.book, policies, self.states, self.config, now_ms)
        if acct.strategies:
            a.strategies = assess_strategies(
                acct, a.metrics.equity, self.book.marks, policies, self.states, self.config, now_ms
            )
        return a

    def monitor(
        self, now_ms: int, apply_trips: bool = True, catch_up: bool = False
    ) -> list[AccountReport]:
        """Evaluate every known account in one go (see :meth:`monitor_account`)."""
        self.begin_monitor_pass(now_ms)
        reports = []
        for account_id in self.known_accounts():
            report = self.monitor_account(account_id, now_ms, apply_trips, catch_up)
            if report is not None:
                reports.append(report)
        return reports

    def begin_monitor_pass(self, now_ms: int) -> None:
        """Start a monitor pass: forget alert de-duplication entries older than the window and
        idle throttle windows."""
        self.deduper.prune(now_ms)
        self.rates.prune(now_ms)

    def monitor_account(
        self, account_id: str, now_ms: int, apply_trips: bool = True, catch_up: bool = False
    ) -> AccountReport | None:
        """Evaluate one known account; a trip is applied to the local state at once.

        The caller publishes the report and writes a trip to the KV bucket. An instance that
        does not publish (``apply_trips`` False) still tracks peaks, breaker hits, onsets and
        de-duplication, but leaves trips to the one that does. The first pass of an instance
        that has just become the one that publishes sets ``catch_up`` (see
        :func:`~risk_worker.domain.monitor.evaluate_account`). The adapter evaluates accounts
        one at a time so that checks are answered in between.

        Returns:
            The report; None when the account is unknown or no policy set is loaded.
        """
        policies = self.policies
        acct = self.book.accounts.get(account_id)
        if policies is None or acct is None or not acct.known:
            return None
        report = evaluate_account(
            acct,
            self.book,
            policies,
            self.states,
            self.breaker,
            self.deduper,
            self.config,
            now_ms,
            self.auto_trip_state,
            catch_up and apply_trips,
        )
        if apply_trips:
            if report.trip is not None:
                self.states.set_local(
                    auto_key(account_id), trip_value(report.trip, self.worker_id, now_ms)
                )
            for trip in report.strategy_trips:
                assert trip.strategy_id is not None
                self.states.set_local(
                    auto_strategy_key(account_id, trip.strategy_id),
                    trip_value(trip, self.worker_id, now_ms),
                )
        return report


def trip_value(trip: Trip, worker_id: str, now_ms: int) -> StateValue:
    """The KV value of an automatic trip (written under ``trading_state.auto.<account_id>``,
    or ``trading_state.auto.<account_id>.strategy.<strategy_id>`` for a strategy's)."""
    return StateValue(trip.state, trip.reason, worker_id, now_ms, trip.source)
