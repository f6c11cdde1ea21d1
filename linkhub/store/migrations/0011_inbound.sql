-- linkhub schema, part 11: inbound webhooks from the sending platforms.
--
-- An inbound endpoint is a URL, <public-url>/in/<token>, that Optimizely Campaign, eSputnik or
-- Arpoone posts its own webhook payloads to. Each item becomes a canonical event of the account
-- (source 'inbound:<provider>'), stored and delivered onward like any other. The token is a
-- capability: only its SHA-256 is kept, as for API keys. The optional Basic password is kept as
-- an scrypt hash with a salt of its own.
CREATE TABLE inbound_endpoints (
    id TEXT PRIMARY KEY,                      -- in_…: names the endpoint in the API and the CLI; grants nothing
    account_id TEXT NOT NULL REFERENCES accounts(id),
    provider TEXT NOT NULL CHECK (provider IN ('optimizely', 'esputnik', 'arpoone')),
    token_sha256 TEXT NOT NULL UNIQUE,        -- hex SHA-256 of the <token> of /in/<token>
    basic_user TEXT,                          -- NULL: no Basic auth asked for
    basic_password_scrypt TEXT,               -- 'scrypt$n$r$p$salt-hex$hash-hex'; NULL with basic_user
    created_at TEXT NOT NULL,                 -- UTC
    token_rotated_at TEXT NOT NULL,           -- UTC: when the current token was issued (created_at at first)
    last_received_at TEXT,                    -- UTC: the last POST that was committed; NULL: none yet
    accepted INTEGER NOT NULL DEFAULT 0,      -- items stored as new events, ever
    duplicates INTEGER NOT NULL DEFAULT 0,    -- items whose event the account already had
    rejected INTEGER NOT NULL DEFAULT 0,      -- items refused (the last 100 are in inbound_rejects)
    CHECK ((basic_user IS NULL) = (basic_password_scrypt IS NULL))
);
CREATE INDEX inbound_endpoints_by_account ON inbound_endpoints (account_id, created_at);

-- The items an endpoint refused, with the reason: the last 100 per endpoint (older ones are
-- deleted as new ones arrive). They may hold a person's address: erasure deletes them.
CREATE TABLE inbound_rejects (
    id INTEGER PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES inbound_endpoints(id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    received_at TEXT NOT NULL,                -- UTC
    item_index INTEGER NOT NULL,              -- the item's position in the body, from 0
    reason TEXT NOT NULL,
    email TEXT,                               -- the address the item names, if it names one where expected
    recipient_id TEXT,                        -- likewise the recipient id (eSputnik's contactId, Optimizely's recipientId)
    item TEXT NOT NULL                        -- the item as JSON, cut to 4096 characters (then not valid JSON)
);
CREATE INDEX inbound_rejects_by_endpoint ON inbound_rejects (endpoint_id, id);
CREATE INDEX inbound_rejects_by_account ON inbound_rejects (account_id);

-- An erasure's receipt counts the rejected items it deleted too.
ALTER TABLE erasures ADD COLUMN inbound_rejects INTEGER NOT NULL DEFAULT 0;
