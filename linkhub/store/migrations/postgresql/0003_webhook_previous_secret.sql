-- linkhub schema (PostgreSQL), part 3: rotating a webhook's signing secret without rejected deliveries.
-- After a rotation, deliveries carry a signature made with the new secret and one made with
-- the previous secret until previous_secret_until, so a receiver can switch to the new
-- secret at any moment in that window (Standard Webhooks lists several signatures in
-- webhook-signature; a receiver accepts the message if any of them verifies).

ALTER TABLE webhooks ADD COLUMN previous_secret TEXT;        -- 'whsec_…' of before the last rotation
ALTER TABLE webhooks ADD COLUMN previous_secret_until TEXT;  -- UTC; it stops signing then (NULL: none)
