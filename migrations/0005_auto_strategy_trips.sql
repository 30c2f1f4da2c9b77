-- Issue 13 §2: the workers' automatic trip of one strategy of one account
-- (trading_state.auto.<account_id>.strategy.<strategy_id>). Its trips and clears are recorded
-- with the scope 'strategy', the strategy in strategy_id and the account in account_id; every
-- other scope keeps the ids of migration 0003 (account_id only for the account scope).

ALTER TABLE emergency_stops DROP CONSTRAINT emergency_stops_scope_ids_check;

ALTER TABLE emergency_stops
    ADD CONSTRAINT emergency_stops_scope_ids_check CHECK (
        (scope = 'strategy') = (strategy_id IS NOT NULL)
        AND (scope = 'symbol') = (symbol IS NOT NULL)
        AND (scope <> 'account' OR account_id IS NOT NULL)
        AND (account_id IS NULL OR scope IN ('account', 'strategy'))
    );
