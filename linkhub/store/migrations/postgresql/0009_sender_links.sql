-- linkhub schema (PostgreSQL), part 9: links minted for any sender through the API, and open pixels.
--
-- A link minted through POST /v1/links is a row of `links` like Outreach's, through the same
-- minting code: one code per (account, mailing, recipient, target URL). What only such links have
-- is an expiry, and the message they were minted for.
ALTER TABLE links ADD COLUMN message_id TEXT;           -- the sender's message id, when it gave one
ALTER TABLE links ADD COLUMN expires_at TEXT;           -- UTC; NULL: never. After it /r/ stops redirecting to target_url
ALTER TABLE links ADD COLUMN expired_url TEXT;          -- where /r/ sends a visitor after expires_at (NULL: an "expired" page)

-- One open pixel per message: GET /o/<code> answers a 1×1 GIF and records an `open` event for it.
CREATE TABLE pixels (
    code TEXT PRIMARY KEY,                    -- the <code> of /o/<code>
    account_id TEXT NOT NULL REFERENCES accounts(id),
    mailing_id TEXT NOT NULL,
    message_id TEXT NOT NULL,                 -- the sender's, or one linkhub derived when it gave none
    recipient_id TEXT,
    email TEXT,
    created_at TEXT NOT NULL,                 -- UTC
    erased_at TEXT                            -- UTC; NULL: not erased (an erased pixel still answers, records nothing)
);
-- One pixel per message: minting it again answers the same code.
CREATE UNIQUE INDEX pixels_by_message ON pixels (account_id, mailing_id, message_id);
