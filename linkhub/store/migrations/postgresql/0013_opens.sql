-- linkhub schema (PostgreSQL), part 13: opens recorded by the open pixel (GET /o/<code>), told apart.
--
-- The pixel stores each open as an `open` event (source 'pixel') whose details carry the
-- classifier's verdict as a click's do, plus: `first_open` (true for the message's first recorded
-- open, decided in the writer's transaction), `proxy` (the mail provider's image proxy that fetched
-- it: a real open whose device is the proxy's; NULL otherwise) and `apple_mpp` (true when Apple Mail
-- Privacy Protection prefetched it: nobody's open).
--
-- The `opens` view shows them like `clicks` shows clicks; mailing_stats splits a mailing's opens
-- into people's (of which through a proxy), Apple MPP's and machines'. Opens a sender posted carry
-- no verdict and no flags: they count as people's, as clicks without a verdict do.
CREATE VIEW opens AS
SELECT
    e.seq,
    e.occurred_at,
    e.account_id,
    e.source,
    e.code,
    e.mailing_id,
    e.message_id,
    e.recipient_id,
    e.email,
    CASE jsonb_typeof(e.details->'first_open') WHEN 'boolean' THEN (e.details->'first_open')::boolean::int WHEN 'number' THEN ((e.details->'first_open')::numeric <> 0)::int END AS first_open,
    CASE
        WHEN coalesce((e.details->>'verdict') IN ('scanner', 'bot'), false) THEN 'machine'
        WHEN coalesce(CASE jsonb_typeof(e.details->'apple_mpp') WHEN 'boolean' THEN (e.details->'apple_mpp')::boolean::int WHEN 'number' THEN ((e.details->'apple_mpp')::numeric <> 0)::int END, 0) <> 0 THEN 'apple_mpp'
        WHEN (e.details->>'proxy') IS NOT NULL THEN 'proxied'
        ELSE 'person'
    END AS kind,
    (e.details->>'proxy') AS proxy,
    coalesce(CASE jsonb_typeof(e.details->'apple_mpp') WHEN 'boolean' THEN (e.details->'apple_mpp')::boolean::int WHEN 'number' THEN ((e.details->'apple_mpp')::numeric <> 0)::int END, 0) AS apple_mpp,
    (e.details->>'ip') AS ip,
    (e.details->>'user_agent') AS user_agent,
    (e.details->>'device') AS device,
    (e.details->>'os') AS os,
    (e.details->>'browser') AS browser,
    coalesce(CASE jsonb_typeof(e.details->'bot') WHEN 'boolean' THEN (e.details->'bot')::boolean::int WHEN 'number' THEN ((e.details->'bot')::numeric <> 0)::int END, 0) AS bot,
    (e.details->>'verdict') AS verdict,
    CASE WHEN jsonb_typeof(e.details->'score') = 'number' THEN (e.details->'score')::numeric END AS score,
    e.details->'reasons' AS reasons,
    (e.details->>'classifier') AS classifier
FROM events e
WHERE e.type = 'open';

-- mailing_stats as part 10 made it, with the opens split (after unique_opens) and open_rate (last):
--   people_opens, unique_people_opens: opens that are not a machine's nor Apple MPP's prefetch;
--   proxied_opens: of those, fetched through a mail provider's image proxy;
--   apple_mpp_opens, machine_opens; first_open_at: the first of people's opens.
-- Read from the `verdict` and `via` columns, which events_by_mailing holds.
DROP VIEW mailing_stats;
CREATE VIEW mailing_stats AS
SELECT *, CAST(unique_people_clicks AS double precision) / nullif(recipients, 0) AS click_through_rate,
       CAST(unique_people_opens AS double precision) / nullif(recipients, 0) AS open_rate FROM (
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
    count(*) FILTER (WHERE type = 'open' AND NOT coalesce(verdict IN ('scanner', 'bot'), false) AND via IS DISTINCT FROM 'apple_mpp') AS people_opens,
    count(DISTINCT coalesce(lower(email), recipient_id)) FILTER (WHERE type = 'open' AND NOT coalesce(verdict IN ('scanner', 'bot'), false) AND via IS DISTINCT FROM 'apple_mpp') AS unique_people_opens,
    count(*) FILTER (WHERE type = 'open' AND NOT coalesce(verdict IN ('scanner', 'bot'), false) AND via IS DISTINCT FROM 'apple_mpp' AND via = 'proxy') AS proxied_opens,
    count(*) FILTER (WHERE type = 'open' AND NOT coalesce(verdict IN ('scanner', 'bot'), false) AND via = 'apple_mpp') AS apple_mpp_opens,
    count(*) FILTER (WHERE type = 'open' AND coalesce(verdict IN ('scanner', 'bot'), false)) AS machine_opens,
    min(occurred_at) FILTER (WHERE type = 'open' AND NOT coalesce(verdict IN ('scanner', 'bot'), false) AND via IS DISTINCT FROM 'apple_mpp') AS first_open_at,
    count(*) FILTER (WHERE type = 'click') AS clicks,
    count(DISTINCT coalesce(lower(email), recipient_id)) FILTER (WHERE type = 'click') AS unique_clicks,
    count(*) FILTER (WHERE type = 'click' AND NOT coalesce(verdict IN ('scanner', 'bot'), false)) AS people_clicks,
    count(DISTINCT coalesce(lower(email), recipient_id)) FILTER (WHERE type = 'click' AND NOT coalesce(verdict IN ('scanner', 'bot'), false)) AS unique_people_clicks,
    count(*) FILTER (WHERE type = 'click' AND coalesce(verdict IN ('scanner', 'bot'), false)) AS machine_clicks,
    count(*) FILTER (WHERE type = 'unsubscribe') AS unsubscribes,
    count(*) FILTER (WHERE type = 'spamcomplaint') AS spam_complaints,
    min(occurred_at) FILTER (WHERE type = 'click' AND NOT coalesce(verdict IN ('scanner', 'bot'), false)) AS first_click_at,
    max(occurred_at) FILTER (WHERE type = 'click' AND NOT coalesce(verdict IN ('scanner', 'bot'), false)) AS last_click_at,
    (SELECT m.first_at FROM mailings m WHERE m.account_id = e.account_id AND m.mailing_id = e.mailing_id) AS first_at,
    max(occurred_at) AS last_at
FROM events e
WHERE e.mailing_id IS NOT NULL
GROUP BY e.account_id, e.mailing_id
UNION ALL
SELECT l.account_id, l.mailing_id, count(DISTINCT coalesce(lower(l.prospect_email), l.prospect_id)),
       0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 0, 0, 0, 0, 0, 0, NULL, NULL,
       (SELECT m.first_at FROM mailings m WHERE m.account_id = l.account_id AND m.mailing_id = l.mailing_id),
       max(l.created_at)
FROM links l
GROUP BY l.account_id, l.mailing_id
-- Once per mailing, not per link.
HAVING NOT EXISTS (SELECT 1 FROM events x WHERE x.account_id = l.account_id AND x.mailing_id = l.mailing_id)
) AS stats;
