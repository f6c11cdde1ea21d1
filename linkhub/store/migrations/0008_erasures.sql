-- linkhub schema, part 8: erasing a recipient, and the receipts that prove it was done.
--
-- An erased recipient's short links keep redirecting (emails already sent must not break) but
-- record nothing more: `erased_at` is read with the link by the redirect's look-up, so checking it
-- costs no query. The link's prospect_email is cleared and its prospect_id replaced by
-- 'erased:<code>' (unique per link, so links_by_recipient stays unique).
ALTER TABLE links ADD COLUMN erased_at TEXT;             -- UTC; NULL: not erased

-- One receipt per erasure request: when, which account, what was removed. Never the identifier:
-- a salted hash of it, which can be recomputed when the operator is given the address again.
CREATE TABLE erasures (
    id INTEGER PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    erased_at TEXT NOT NULL,                               -- UTC
    identifier_kind TEXT NOT NULL CHECK (identifier_kind IN ('email', 'recipient_id')),
    identifier_hash TEXT NOT NULL,                         -- hex scrypt of kind:identifier with the salt below
    via TEXT NOT NULL CHECK (via IN ('cli', 'api')),
    events INTEGER NOT NULL,                               -- events deleted (all types, clicks included)
    clicks INTEGER NOT NULL,                               -- of which clicks
    outbox INTEGER NOT NULL,                               -- queued or past deliveries of those events
    verdict_changes INTEGER NOT NULL,                      -- verdict history of those clicks
    links_kept INTEGER NOT NULL,                           -- links anonymised, still redirecting
    links_deleted INTEGER NOT NULL                         -- links whose URL held the address: deleted (404)
);
CREATE INDEX erasures_by_hash ON erasures (account_id, identifier_hash);

-- The salt of the receipts' hashes: random, one per database, made here once. A backup carries it,
-- so receipts stay verifiable in a restored copy.
CREATE TABLE erasure_salt (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    salt BLOB NOT NULL
);
INSERT INTO erasure_salt (id, salt) VALUES (1, randomblob(32));
