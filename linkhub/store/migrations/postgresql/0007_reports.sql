-- linkhub schema (PostgreSQL), part 7: reporting views — one mailing's numbers, its links', one recipient's activity.
--
-- Conventions shared by the three views (docs/schema.md says the same to users):
-- * A recipient is their address, lower-cased (ASCII, as COLLATE NOCASE compares), or their
--   recipient id when the row has no address: the same person reported by a sender (often by
--   address) and by Outreach's links (prospect id and address) is counted once.
-- * People's clicks are every click whose verdict is not `scanner` or `bot`: `human`, `unknown`,
--   and clicks without a verdict (posted by a sender, or recorded before verdicts), which is how
--   webhooks treat them. HEAD requests of /r/ links always carry a machine's verdict, so they are
--   machine clicks.
-- * The views are written so that SQLite pushes `account_id = ? AND mailing_id = ?` (or the
--   recipient) down to the tables and an index serves it: events_by_mailing and
--   links_by_recipient for a mailing, events_by_recipient (below) for a recipient. So each view is
--   aggregates straight over `events`, and what comes from `links` is a correlated subquery or an arm
--   of its own; an aggregate over a UNION ALL subquery would read better but SQLite 3.40 does not
--   push a condition through two levels, and then one mailing's report reads every event.

-- One recipient's events by index: the recipient expression of the views, exactly as they write it.
CREATE INDEX events_by_recipient ON events (account_id, coalesce(lower(email), recipient_id));

-- Per account and mailing: its events (with a mailing_id), and the mailings that have links but no
-- event yet (the second arm).
CREATE VIEW mailing_stats AS
SELECT *, CAST(unique_people_clicks AS double precision) / nullif(recipients, 0) AS click_through_rate FROM (
SELECT
    e.account_id,
    e.mailing_id,
    -- Recipients: everyone a link was minted for, and everyone a `sent` event names.
    (SELECT count(DISTINCT recipient) FROM (
        SELECT coalesce(lower(l.prospect_email), l.prospect_id) AS recipient FROM links l
        WHERE l.account_id = e.account_id AND l.mailing_id = e.mailing_id
        UNION ALL
        SELECT coalesce(lower(s.email), s.recipient_id) FROM events s
        WHERE s.account_id = e.account_id AND s.mailing_id = e.mailing_id AND s.type = 'sent') AS named) AS recipients,
    count(*) FILTER (WHERE type = 'sent') AS sent,
    count(*) FILTER (WHERE type = 'delivered') AS delivered,
    count(*) FILTER (WHERE type = 'undelivered') AS undelivered,
    count(*) FILTER (WHERE type = 'bounce') AS bounces,
    count(*) FILTER (WHERE type = 'bounce' AND (details->>'category') = 'hard') AS hard_bounces,
    count(*) FILTER (WHERE type = 'bounce' AND (details->>'category') = 'soft') AS soft_bounces,
    count(*) FILTER (WHERE type = 'open') AS opens,
    count(DISTINCT coalesce(lower(email), recipient_id)) FILTER (WHERE type = 'open') AS unique_opens,
    count(*) FILTER (WHERE type = 'click') AS clicks,
    count(DISTINCT coalesce(lower(email), recipient_id)) FILTER (WHERE type = 'click') AS unique_clicks,
    count(*) FILTER (WHERE type = 'click' AND NOT coalesce((details->>'verdict') IN ('scanner', 'bot'), false)) AS people_clicks,
    count(DISTINCT coalesce(lower(email), recipient_id)) FILTER (WHERE type = 'click' AND NOT coalesce((details->>'verdict') IN ('scanner', 'bot'), false)) AS unique_people_clicks,
    count(*) FILTER (WHERE type = 'click' AND coalesce((details->>'verdict') IN ('scanner', 'bot'), false)) AS machine_clicks,
    count(*) FILTER (WHERE type = 'unsubscribe') AS unsubscribes,
    count(*) FILTER (WHERE type = 'spamcomplaint') AS spam_complaints,
    min(occurred_at) FILTER (WHERE type = 'click' AND NOT coalesce((details->>'verdict') IN ('scanner', 'bot'), false)) AS first_click_at,
    max(occurred_at) FILTER (WHERE type = 'click' AND NOT coalesce((details->>'verdict') IN ('scanner', 'bot'), false)) AS last_click_at,
    min(occurred_at) AS first_at,
    max(occurred_at) AS last_at
FROM events e
WHERE e.mailing_id IS NOT NULL
GROUP BY e.account_id, e.mailing_id
UNION ALL
SELECT l.account_id, l.mailing_id, count(DISTINCT coalesce(lower(l.prospect_email), l.prospect_id)),
       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, min(l.created_at), max(l.created_at)
FROM links l
GROUP BY l.account_id, l.mailing_id
-- Once per mailing, not per link.
HAVING NOT EXISTS (SELECT 1 FROM events x WHERE x.account_id = l.account_id AND x.mailing_id = l.mailing_id)
) AS stats;

-- Per account, mailing and original URL: the clicks on it, and the links minted for it that nobody
-- clicked yet (the second arm).
CREATE VIEW link_stats AS
SELECT
    e.account_id,
    e.mailing_id,
    e.url AS original_url,
    (SELECT count(DISTINCT coalesce(lower(l.prospect_email), l.prospect_id)) FROM links l
     WHERE l.account_id = e.account_id AND l.mailing_id = e.mailing_id AND l.original_url = e.url) AS recipients,
    count(*) AS clicks,
    count(DISTINCT coalesce(lower(email), recipient_id)) AS unique_clicks,
    count(*) FILTER (WHERE NOT coalesce((details->>'verdict') IN ('scanner', 'bot'), false)) AS people_clicks,
    count(DISTINCT coalesce(lower(email), recipient_id)) FILTER (WHERE NOT coalesce((details->>'verdict') IN ('scanner', 'bot'), false)) AS unique_people_clicks,
    count(*) FILTER (WHERE coalesce((details->>'verdict') IN ('scanner', 'bot'), false)) AS machine_clicks,
    min(occurred_at) FILTER (WHERE NOT coalesce((details->>'verdict') IN ('scanner', 'bot'), false)) AS first_click_at,
    max(occurred_at) FILTER (WHERE NOT coalesce((details->>'verdict') IN ('scanner', 'bot'), false)) AS last_click_at
FROM events e
WHERE e.type = 'click' AND e.mailing_id IS NOT NULL AND e.url IS NOT NULL
GROUP BY e.account_id, e.mailing_id, e.url
UNION ALL
SELECT l.account_id, l.mailing_id, l.original_url, count(DISTINCT coalesce(lower(l.prospect_email), l.prospect_id)),
       0, 0, 0, 0, 0, NULL, NULL
FROM links l
GROUP BY l.account_id, l.mailing_id, l.original_url
HAVING NOT EXISTS (SELECT 1 FROM events x WHERE x.account_id = l.account_id AND x.mailing_id = l.mailing_id
                   AND x.type = 'click' AND x.url = l.original_url);

-- Per account and recipient: every event that names one.
CREATE VIEW recipient_activity AS
SELECT
    account_id,
    recipient,
    max(recipient_id) AS recipient_id,
    max(email) AS email,
    count(*) AS events,
    count(DISTINCT mailing_id) AS mailings,
    count(*) FILTER (WHERE type = 'sent') AS sent,
    count(*) FILTER (WHERE type = 'delivered') AS delivered,
    count(*) FILTER (WHERE type = 'bounce') AS bounces,
    count(*) FILTER (WHERE type = 'open') AS opens,
    min(occurred_at) FILTER (WHERE type = 'open') AS first_open_at,
    max(occurred_at) FILTER (WHERE type = 'open') AS last_open_at,
    count(*) FILTER (WHERE type = 'click' AND NOT machine) AS clicks,
    min(occurred_at) FILTER (WHERE type = 'click' AND NOT machine) AS first_click_at,
    max(occurred_at) FILTER (WHERE type = 'click' AND NOT machine) AS last_click_at,
    count(*) FILTER (WHERE type = 'click' AND machine) AS machine_clicks,
    count(*) FILTER (WHERE type = 'unsubscribe') AS unsubscribes,
    count(*) FILTER (WHERE type = 'spamcomplaint') AS spam_complaints,
    max(occurred_at) AS last_event_at,
    -- The type of the latest event (by time, then by arrival): times are fixed-width text (24
    -- characters), seq is padded to 20 digits, so the greatest key is the latest event's (in byte
    -- order, as SQLite compares: COLLATE "C").
    substr(max((occurred_at || lpad(seq::text, 20, '0') || type) COLLATE "C"), 45) AS last_event_type
FROM (
    SELECT account_id, coalesce(lower(email), recipient_id) AS recipient, recipient_id, email, seq, type,
           mailing_id, occurred_at,
           type = 'click' AND coalesce((details->>'verdict') IN ('scanner', 'bot'), false) AS machine
    FROM events
    WHERE coalesce(lower(email), recipient_id) IS NOT NULL
) AS named
GROUP BY account_id, recipient;
