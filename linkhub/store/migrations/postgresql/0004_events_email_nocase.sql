-- linkhub schema (PostgreSQL), part 4: recipient look-ups ignore the case of the address.
-- `GET /v1/events?email=Ann@Example.com` finds events stored as ann@example.com (senders
-- differ in how they spell an address). SQLite's index is on `email COLLATE NOCASE`; here it is on
-- lower(email), which queries compare with lower(%s), so the look-up stays an index range. (A
-- nondeterministic ICU collation would need ICU and cannot serve LIKE on PostgreSQL 15; lower() is
-- what events_by_recipient and the reporting views already use.) It replaces the case-sensitive
-- index, which nothing uses any more.
DROP INDEX IF EXISTS events_by_email;
CREATE INDEX events_by_email ON events (account_id, lower(email));
