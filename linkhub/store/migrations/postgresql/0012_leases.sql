-- linkhub schema (PostgreSQL), part 12: leases, so that several processes on one database share the work safely.
--
-- A lease names one piece of work that one process at a time may do: a webhook's deliveries
-- (kind 'webhook', key the webhook id) or a periodic task (kind 'task', key its name). The process
-- holding it is `owner` (unique per process start); `epoch` is its fencing token, bumped each time
-- the lease changes hands and never reset. Every claim and outcome of a delivery is written only
-- while the row still says (owner, epoch), and pushes `expires_at` on; another process may take
-- the lease over only once it is free (owner NULL: released) or past `expires_at` (its owner
-- crashed or froze), and taking a webhook's lease over returns the rows its old owner left
-- 'sending' to the queue in the same transaction. Times are the database's clock, so the hosts'
-- clocks do not need to agree.
CREATE TABLE leases (
    kind TEXT NOT NULL CHECK (kind IN ('webhook', 'task')),
    key TEXT NOT NULL,
    owner TEXT,                               -- NULL: released (free to take)
    epoch INTEGER NOT NULL CHECK (epoch >= 1),
    acquired_at TEXT NOT NULL,                -- UTC: when the current epoch began
    expires_at TEXT NOT NULL,                 -- UTC: others may take it over after this
    PRIMARY KEY (kind, key)
);
-- A process's own leases: renewed together, released together at a graceful stop.
CREATE INDEX leases_by_owner ON leases (owner) WHERE owner IS NOT NULL;
