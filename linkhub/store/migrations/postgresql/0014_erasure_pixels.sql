-- linkhub schema, part 14: an erasure's receipt counts the open pixels it anonymised, as it counts
-- the links it kept redirecting (receipts of erasures before this version say 0).
ALTER TABLE erasures ADD COLUMN pixels INTEGER NOT NULL DEFAULT 0;
