-- linkhub schema, part 15: a recipient's opens told apart as a mailing's are (part 13): people's
-- opens (neither a machine's nor Apple Mail Privacy Protection's prefetch), Apple MPP's and
-- machines' counted apart, and the first and last open are people's. `opens` still counts every
-- open. `machine` is now a verdict's of any event (clicks and opens); `clicks` keep `type = 'click'`.
DROP VIEW recipient_activity;
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
    count(*) FILTER (WHERE type = 'open' AND person) AS people_opens,
    count(*) FILTER (WHERE type = 'open' AND NOT machine AND via = 'apple_mpp') AS apple_mpp_opens,
    count(*) FILTER (WHERE type = 'open' AND machine) AS machine_opens,
    min(occurred_at) FILTER (WHERE type = 'open' AND person) AS first_open_at,
    max(occurred_at) FILTER (WHERE type = 'open' AND person) AS last_open_at,
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
           coalesce(verdict IN ('scanner', 'bot'), false) AS machine, via,
           NOT coalesce(verdict IN ('scanner', 'bot'), false) AND via IS DISTINCT FROM 'apple_mpp' AS person
    FROM events
    WHERE coalesce(lower(email), recipient_id) IS NOT NULL
) AS named
GROUP BY account_id, recipient;
