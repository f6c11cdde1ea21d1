-- The numbers new links' and pixels' codes begin with (SQLite uses its tables' rowid, which PostgreSQL
-- has not): one per INSERT of a chunk of codes, so a chunk's codes sort together, after earlier ones.
-- A database copied from SQLite, or migrated before this, starts past the rows it holds.
CREATE SEQUENCE link_numbers;
CREATE SEQUENCE pixel_numbers;
SELECT setval('link_numbers', (SELECT count(*) + 1 FROM links), false);
SELECT setval('pixel_numbers', (SELECT count(*) + 1 FROM pixels), false);
