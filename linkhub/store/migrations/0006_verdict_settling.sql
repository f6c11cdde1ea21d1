-- linkhub schema, part 6: verdicts that settle, and webhooks that choose which verdicts they get.
--
-- A click's first verdict is stored with it; hits that arrive after it (the rest of a scanner's
-- burst) can change it while the settle window lasts, and `linkhub classify rescore` can change it
-- later under newer rules. Every change is a row of verdict_changes, and the click's `details` holds
-- the current verdict.
CREATE TABLE verdict_changes (
    id INTEGER PRIMARY KEY,                   -- order of the changes
    account_id TEXT NOT NULL REFERENCES accounts(id),
    event_seq INTEGER NOT NULL,               -- the click (events.seq)
    changed_at TEXT NOT NULL,                 -- when the verdict changed (UTC)
    cause TEXT NOT NULL CHECK (cause IN ('settle', 'rescore')),
    old_verdict TEXT,                         -- NULL: the click had no verdict (recorded before verdicts)
    old_score INTEGER,
    new_verdict TEXT NOT NULL CHECK (new_verdict IN ('human', 'unknown', 'scanner', 'bot')),
    new_score INTEGER NOT NULL,
    reasons TEXT NOT NULL,                    -- JSON list of {code, weight, evidence}: the new verdict's reasons
    classifier TEXT NOT NULL                  -- the classifier version that made the new verdict
);
CREATE INDEX verdict_changes_by_event ON verdict_changes (event_seq);
CREATE INDEX verdict_changes_by_time ON verdict_changes (account_id, changed_at);

-- Which verdicts a webhook receives clicks for (JSON array; all four by default), and whether it
-- waits for the settled verdict before a click is delivered.
ALTER TABLE webhooks ADD COLUMN verdicts TEXT NOT NULL DEFAULT '["human","unknown","scanner","bot"]';
ALTER TABLE webhooks ADD COLUMN wait_for_verdict INTEGER NOT NULL DEFAULT 0 CHECK (wait_for_verdict IN (0, 1));

-- HEAD requests of /r/ links are recorded now too (always as a machine): the view says which it was.
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
    coalesce(json_extract(e.details, '$.method'), 'GET') AS method,
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
