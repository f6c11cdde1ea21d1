-- Nothing changes on SQLite: a new link's or pixel's code begins with the next rowid of its table.
-- (PostgreSQL's twin of this migration makes the sequences its tables have no rowid for.)
SELECT 1;
