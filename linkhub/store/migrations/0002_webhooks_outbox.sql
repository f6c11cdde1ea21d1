-- linkhub schema, part 2: webhook subscriptions, the outbox that feeds them, and the
-- log of delivery attempts. Times are UTC RFC 3339 text, as in part 1.

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,                      -- 'wh_…'
    account_id TEXT NOT NULL REFERENCES accounts(id),
    url TEXT NOT NULL,                        -- http(s) receiver
    types TEXT NOT NULL DEFAULT '[]',         -- JSON array of event types; [] = every type
    format TEXT NOT NULL DEFAULT 'linkhub'
        CHECK (format IN ('linkhub', 'optimizely', 'esputnik', 'arpoone')),
    auth TEXT NOT NULL DEFAULT '{"type":"none"}', -- JSON; holds the password/token/value: never shown
    secret TEXT NOT NULL,                     -- Standard Webhooks signing secret ('whsec_…')
    batch_size INTEGER NOT NULL DEFAULT 100 CHECK (batch_size BETWEEN 1 AND 1000),
    retry_policy TEXT NOT NULL DEFAULT 'exponential' CHECK (retry_policy IN ('exponential', 'fixed')),
    retry_interval_s INTEGER CHECK (retry_interval_s IS NULL OR retry_interval_s >= 1), -- 'fixed' only
    max_age_s INTEGER NOT NULL DEFAULT 259200 CHECK (max_age_s >= 1),
    timeout_s INTEGER NOT NULL DEFAULT 10 CHECK (timeout_s BETWEEN 1 AND 60), -- whole POST, connect to last byte
    ordered INTEGER NOT NULL DEFAULT 1 CHECK (ordered IN (0, 1)),
    description TEXT,
    status TEXT NOT NULL DEFAULT 'inactive' CHECK (status IN ('active', 'inactive', 'disabled')),
    status_reason TEXT,                       -- why it is disabled (e.g. the receiver answered 410 Gone)
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX webhooks_by_account ON webhooks (account_id, status);

-- One row per (event, webhook) to deliver. Written in the same transaction as the event.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,                   -- delivery order within a webhook
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_seq INTEGER NOT NULL REFERENCES events(seq),
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,      -- POSTs that carried this event so far
    queued_at TEXT NOT NULL,                  -- when it was queued (or re-queued by replay); expiry counts from here
    next_attempt_at TEXT NOT NULL,            -- not before this time
    last_attempt_at TEXT,
    delivered_at TEXT,
    last_error TEXT                           -- why the last attempt failed; kept on dead rows
);
-- What the delivery loop reads: the queue of each webhook, in order.
CREATE INDEX outbox_queue ON outbox (webhook_id, id) WHERE state IN ('pending', 'sending');
CREATE INDEX outbox_by_event ON outbox (event_seq);
-- Dead rows, for `linkhub outbox status` and replay --dead-only.
CREATE INDEX outbox_dead ON outbox (webhook_id, id) WHERE state = 'dead';

-- Every POST linkhub made to a receiver, for GET /v1/webhooks/{id}/deliveries.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    message_id TEXT NOT NULL,                 -- the webhook-id header of that POST
    attempted_at TEXT NOT NULL,
    events INTEGER NOT NULL,                  -- how many events the batch carried
    status_code INTEGER,                      -- NULL when no HTTP answer came (timeout, refused, TLS…)
    duration_ms INTEGER NOT NULL,
    error TEXT,                               -- NULL on success
    test INTEGER NOT NULL DEFAULT 0           -- 1 for verify batches of sample events
);
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, id);

-- Recipient look-ups ("what happened to this address") for the API and for reports.
CREATE INDEX events_by_email ON events (account_id, email);
