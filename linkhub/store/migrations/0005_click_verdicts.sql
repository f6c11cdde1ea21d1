-- linkhub schema, part 5: each click's verdict in the clicks view.
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
    coalesce(json_extract(e.details, '$.target'), e.url) AS target_url,
    json_extract(e.details, '$.ip') AS ip,
    json_extract(e.details, '$.user_agent') AS user_agent,
    json_extract(e.details, '$.device') AS device,
    json_extract(e.details, '$.os') AS os,
    json_extract(e.details, '$.browser') AS browser,
    coalesce(json_extract(e.details, '$.bot'), 0) AS bot,
    json_extract(e.details, '$.referer') AS referer,
    json_extract(e.details, '$.verdict') AS verdict,
    json_extract(e.details, '$.score') AS score,
    json_extract(e.details, '$.reasons') AS reasons,
    json_extract(e.details, '$.classifier') AS classifier
FROM events e
WHERE e.type = 'click';
