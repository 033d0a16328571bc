-- Every outbox row is updated twice within milliseconds of its insert: claimed
-- (claimed_until) and marked sent (sent_at). With full pages (fillfactor 100) the claim
-- goes to another page and adds entries to events_pkey and events_unsent; with room
-- left on the page it is a HOT update (same page, no index entry). The mark changes
-- the indexed sent_at, so it is never HOT, but it too finds room on the page. 50
-- leaves room for both new versions of the rows inserted on a page until PostgreSQL
-- prunes it. Only pages written from now on are filled to 50%; SHARE UPDATE
-- EXCLUSIVE lock, writes go on.
ALTER TABLE events SET (fillfactor = 50);
