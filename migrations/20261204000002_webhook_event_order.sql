-- Webhook ordering: the signed timestamp of the last subscription event applied to each
-- location, so a late delivery of an older event (a SubscriptionUpdated sent before a
-- SubscriptionCanceled, delivered after it) cannot undo the newer one. Null: no event yet
-- (rows written before this migration accept the next event whatever its time).
alter table subscriptions add column last_event_at timestamptz;
