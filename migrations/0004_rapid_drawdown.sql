-- Rapid drawdown of the built-in policy set (issue 13): a soft warning when equity falls 5 %
-- below its highest of the last RISK_DRAWDOWN_WINDOW seconds (metric drawdown_window;
-- trade2026's breaker configuration, 5 % in 300 s), seeded so that a database-backed
-- deployment (whose policies replace the built-in set) has it too. The id is
-- uuid5(NAMESPACE_URL, 'risk-worker/policy/<name>'), as in default_policies().
-- ON CONFLICT (name) DO NOTHING: a policy of that name an operator already wrote is kept.

INSERT INTO risk_policies (id, name, type, metric, operator, threshold, priority) VALUES
    ('8e0dc537-4ee0-59d6-b0bf-c43b6b3a7310', 'Rapid Drawdown Warning', 'soft', 'drawdown_window', 'lte', 0.05, 35)
ON CONFLICT (name) DO NOTHING;
