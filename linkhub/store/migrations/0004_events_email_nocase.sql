-- linkhub schema, part 4: recipient look-ups ignore the case of the address.
-- `GET /v1/events?email=Ann@Example.com` finds events stored as ann@example.com (senders
-- differ in how they spell an address). The index compares the way the query does
-- (COLLATE NOCASE: ASCII letters), so the look-up stays an index range, and it replaces
-- the case-sensitive one, which nothing uses any more.
DROP INDEX IF EXISTS events_by_email;
CREATE INDEX events_by_email ON events (account_id, email COLLATE NOCASE);
