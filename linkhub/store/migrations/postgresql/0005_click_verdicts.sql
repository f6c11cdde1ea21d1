-- linkhub schema (PostgreSQL), part 5: each click's verdict in the clicks view.
-- Clicks recorded from now on carry the classifier's verdict in `details` (human, unknown,
-- scanner or bot), its score, its reasons and the classifier's version; `bot` is true when the
-- verdict is scanner or bot. Clicks recorded before have no verdict: NULL here, not a guess.
DROP VIEW clicks;
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
    coalesce((e.details->>'target'), e.url) AS target_url,
    (e.details->>'ip') AS ip,
    (e.details->>'user_agent') AS user_agent,
    (e.details->>'device') AS device,
    (e.details->>'os') AS os,
    (e.details->>'browser') AS browser,
    coalesce(CASE jsonb_typeof(e.details->'bot') WHEN 'boolean' THEN (e.details->'bot')::boolean::int WHEN 'number' THEN ((e.details->'bot')::numeric <> 0)::int END, 0) AS bot,
    (e.details->>'referer') AS referer,
    (e.details->>'verdict') AS verdict,
    CASE WHEN jsonb_typeof(e.details->'score') = 'number' THEN (e.details->'score')::numeric END AS score,
    e.details->'reasons' AS reasons,
    (e.details->>'classifier') AS classifier
FROM events e
WHERE e.type = 'click';
