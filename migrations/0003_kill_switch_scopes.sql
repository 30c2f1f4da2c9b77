-- Issue 12: kill switches of a strategy and of a symbol (trading_state.strategy.<id>,
-- trading_state.symbol.<symbol>). Their trips and clears are recorded with the scope
-- 'strategy' or 'symbol' and the id in the column of that name; account_id stays the
-- account scope's alone.

ALTER TABLE emergency_stops DROP CONSTRAINT emergency_stops_scope_check;
ALTER TABLE emergency_stops DROP CONSTRAINT emergency_stops_check;

ALTER TABLE emergency_stops
    ADD COLUMN strategy_id text NULL,
    ADD COLUMN symbol      text NULL;

ALTER TABLE emergency_stops
    ADD CONSTRAINT emergency_stops_scope_check
        CHECK (scope IN ('global', 'account', 'strategy', 'symbol')),
    ADD CONSTRAINT emergency_stops_scope_ids_check CHECK (
        (scope = 'account') = (account_id IS NOT NULL)
        AND (scope = 'strategy') = (strategy_id IS NOT NULL)
        AND (scope = 'symbol') = (symbol IS NOT NULL)
    );

CREATE INDEX emergency_stops_strategy_time ON emergency_stops (strategy_id, occurred_at)
    WHERE strategy_id IS NOT NULL;
CREATE INDEX emergency_stops_symbol_time ON emergency_stops (symbol, occurred_at)
    WHERE symbol IS NOT NULL;
