-- risk-worker schema: policies (hot-reloaded by the workers), and the audit trail of
-- violations and emergency stops written by the risk-sink consumer.
-- Forward-only; applied by `risk-worker db migrate` in one transaction.

CREATE TABLE risk_policies (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    type        text        NOT NULL CHECK (type IN ('hard', 'soft', 'emergency')),
    -- Not constrained here: a worker skips (and logs) a row whose metric it does not know,
    -- so a newer metric can be configured before every worker understands it.
    metric      text        NOT NULL,
    operator    text        NOT NULL CHECK (operator IN ('lt', 'lte', 'gt', 'gte')),
    threshold   numeric     NOT NULL
                            CHECK (threshold NOT IN ('NaN', 'Infinity', '-Infinity')),
    scope       text        NOT NULL DEFAULT 'account'
                            CHECK (scope IN ('account', 'symbol', 'strategy')),
    scope_id    text        NULL CHECK (scope_id ~ '^[A-Za-z0-9_/=-]{1,64}$'),
    enabled     boolean     NOT NULL DEFAULT true,
    priority    integer     NOT NULL DEFAULT 100,
    version     integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON COLUMN risk_policies.version IS
    'optimistic locking: bumped by a trigger on every update; writers update WHERE version = read';

-- Every update bumps the version and the timestamp, whoever writes (CLI or plain SQL).
CREATE FUNCTION risk_policies_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER risk_policies_touch BEFORE UPDATE ON risk_policies
    FOR EACH ROW EXECUTE FUNCTION risk_policies_touch();

-- Workers LISTEN on this channel and reload their policy set within a second.
CREATE FUNCTION risk_policies_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('risk_policies_changed', COALESCE(NEW.name, OLD.name));
    RETURN NULL;
END
$$;

CREATE TRIGGER risk_policies_notify AFTER INSERT OR UPDATE OR DELETE ON risk_policies
    FOR EACH ROW EXECUTE FUNCTION risk_policies_notify();

-- The five built-in policies; ids are uuid5(NAMESPACE_URL, 'risk-worker/policy/<name>').
INSERT INTO risk_policies (id, name, type, metric, operator, threshold, priority) VALUES
    ('25df718a-9251-5611-9e4e-5c35848ac433', 'Max Account Leverage',    'hard',      'leverage',       'lte', 10,   10),
    ('123278a2-420b-5b6d-85e6-dbd4a524138b', 'Min Margin Ratio',        'hard',      'margin_ratio',   'gte', 1.0,  20),
    ('127718cc-511c-5eec-9e70-6f562cb86f38', 'Daily Drawdown Warning',  'soft',      'drawdown_daily', 'lte', 0.10, 30),
    ('3a2ed216-06b5-5b97-b6df-bd5daea4c3a0', 'Max Drawdown',            'hard',      'drawdown_max',   'lte', 0.20, 40),
    ('6dfaa332-46f8-5a56-bad9-055975f77b6d', 'Emergency Drawdown Stop', 'emergency', 'drawdown_max',   'lte', 0.25, 5);

CREATE TABLE risk_violations (
    id              uuid             PRIMARY KEY,
    occurred_at     timestamptz      NOT NULL,
    account_id      text             NOT NULL,
    -- text, not a foreign key: a violation of a built-in or since-deleted policy stays on record
    policy_id       text             NOT NULL,
    policy_name     text             NOT NULL,
    policy_type     text             NOT NULL,
    metric          text             NOT NULL,
    metric_value    double precision NULL,      -- null: infinite (e.g. leverage at equity <= 0)
    threshold_value double precision NOT NULL,
    source          text             NOT NULL CHECK (source IN ('pre_trade', 'monitor')),
    order_id        text             NULL,
    action_taken    text             NOT NULL CHECK (action_taken IN ('denied', 'alerted', 'halted')),
    context         jsonb            NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX risk_violations_account_time ON risk_violations (account_id, occurred_at);
CREATE INDEX risk_violations_policy_time ON risk_violations (policy_id, occurred_at);

CREATE TABLE emergency_stops (
    id               uuid        PRIMARY KEY,
    occurred_at      timestamptz NOT NULL,
    scope            text        NOT NULL CHECK (scope IN ('global', 'account')),
    account_id       text        NULL,
    action           text        NOT NULL CHECK (action IN ('trip', 'clear')),
    state            text        NOT NULL CHECK (state IN ('ACTIVE', 'REDUCING', 'HALTED')),
    reason           text        NOT NULL DEFAULT '',
    triggered_by     text        NOT NULL DEFAULT '',
    source           text        NOT NULL,
    revision         bigint      NULL,          -- KV revision of the trading-state key
    account_snapshot jsonb       NULL,          -- metrics and positions at that moment
    CHECK ((scope = 'global') = (account_id IS NULL))
);

CREATE INDEX emergency_stops_account_time ON emergency_stops (account_id, occurred_at);
