-- Order-level controls of the built-in policy set (issue 12): a price collar, a message
-- throttle and a maximum order size, seeded so that a database-backed deployment (whose
-- policies replace the built-in set) has them too. Ids are
-- uuid5(NAMESPACE_URL, 'risk-worker/policy/<name>'), as in default_policies().
-- ON CONFLICT (name) DO NOTHING: a policy of that name an operator already wrote is kept.

INSERT INTO risk_policies (id, name, type, metric, operator, threshold, priority) VALUES
    ('0514b318-4da8-554a-a4da-2807742b36be', 'Price Collar',   'hard', 'price_deviation',       'lte', 0.05, 50),
    ('7a04ed70-afea-51e7-8bbc-c0f8f7fba674', 'Max Order Rate', 'hard', 'order_rate',            'lte', 50,   60),
    ('4257993b-730d-5149-a090-07ff999563d3', 'Max Order Size', 'hard', 'order_equity_fraction', 'lte', 10,   70)
ON CONFLICT (name) DO NOTHING;
