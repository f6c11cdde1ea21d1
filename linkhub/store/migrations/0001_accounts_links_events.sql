-- linkhub schema, part 1: tenants, minted short links, and the event store.
-- Every time is UTC text in RFC 3339 with milliseconds ('2026-11-23T09:15:02.481Z'),
-- so it sorts as text and SQLite's date functions read it.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,                      -- random, appears in the Outreach URL
    name TEXT NOT NULL,
    outreach_secret TEXT NOT NULL,            -- Outreach's signing secret (needed in clear to check HMACs)
    api_key_sha256 TEXT NOT NULL UNIQUE,      -- the API key itself is shown once and never stored
    public_url TEXT,                          -- overrides the server's --public-url for this account's links
    link_filter TEXT,                         -- PCRE-style pattern matched against original URLs
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE links (
    code TEXT PRIMARY KEY,                    -- the <code> of /r/<code>
    account_id TEXT NOT NULL REFERENCES accounts(id),
    target_url TEXT NOT NULL,                 -- where /r/<code> redirects (the value Outreach sent in data)
    original_url TEXT NOT NULL,               -- the link as written in the email (meta.urls key)
    mailing_id TEXT NOT NULL,
    prospect_id TEXT NOT NULL,
    prospect_email TEXT,
    user_id TEXT,
    user_email TEXT,
    created_at TEXT NOT NULL
);
-- One code per recipient and link: makes link replacement idempotent.
CREATE UNIQUE INDEX links_by_recipient ON links (account_id, mailing_id, prospect_id, target_url);

CREATE TABLE events (
    seq INTEGER PRIMARY KEY,                  -- order of arrival in linkhub; stable cursor
    id TEXT NOT NULL,                         -- the sender's event id, or one linkhub assigned ('lh_…')
    account_id TEXT NOT NULL REFERENCES accounts(id),
    type TEXT NOT NULL CHECK (type IN ('sent', 'delivered', 'undelivered', 'open', 'click',
                                       'bounce', 'unsubscribe', 'spamcomplaint', 'subscription_changed')),
    occurred_at TEXT NOT NULL,                -- when it happened (UTC)
    received_at TEXT NOT NULL,                -- when linkhub stored it (UTC)
    source TEXT NOT NULL,                     -- 'redirect' (our /r/ links) or 'api' (POST /v1/events)
    email TEXT,
    recipient_id TEXT,                        -- Outreach prospect id for clicks on our links
    mailing_id TEXT,
    message_id TEXT,
    url TEXT,                                 -- click: the ORIGINAL url the recipient meant to visit
    code TEXT,                                -- click via /r/: the link's code
    details TEXT NOT NULL DEFAULT '{}'        -- JSON object, type-specific fields
);
CREATE UNIQUE INDEX events_by_id ON events (account_id, id);
CREATE INDEX events_by_time ON events (account_id, occurred_at);
CREATE INDEX events_by_mailing ON events (account_id, mailing_id, type);
CREATE INDEX events_by_code ON events (code) WHERE code IS NOT NULL;

-- The click report most people want, flattened out of details.
CREATE VIEW clicks AS
SELECT
    e.seq,
    e.occurred_at,
    e.account_id,
    e.code,
    e.mailing_id,
    e.recipient_id AS prospect_id,
    e.email AS prospect_email,
    e.url AS original_url,
    coalesce(json_extract(e.details, '$.target'), e.url) AS target_url,
    json_extract(e.details, '$.ip') AS ip,
    json_extract(e.details, '$.user_agent') AS user_agent,
    json_extract(e.details, '$.device') AS device,
    json_extract(e.details, '$.os') AS os,
    json_extract(e.details, '$.browser') AS browser,
    coalesce(json_extract(e.details, '$.bot'), 0) AS bot,
    json_extract(e.details, '$.referer') AS referer
FROM events e
WHERE e.type = 'click';
