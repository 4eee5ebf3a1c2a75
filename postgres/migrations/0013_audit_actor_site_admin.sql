-- Whether the actor was a site administrator (or an admin key, which acts
-- as one) when it acted: an organization's own people are not shown such
-- an actor's address and user agent. Entries recorded before carry false.
ALTER TABLE audit_log ADD COLUMN actor_site_admin BOOLEAN NOT NULL DEFAULT false;
