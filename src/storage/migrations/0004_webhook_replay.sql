-- Signed device events: the Standard Webhooks message id (webhook-id) of every accepted message,
-- written in the same transaction as the event, so a replay of the message is refused by every
-- gateway instance, across restarts. A row is needed only while a replay could still pass the
-- signature's timestamp check (5 minutes either way); expires_at leaves a margin for clock skew
-- between instances, and expired rows are pruned.
create table webhook_messages (
  webhook_id text primary key,
  event_id text not null,
  signed_at timestamptz not null,
  received_at timestamptz not null,
  expires_at timestamptz not null
);
create index webhook_messages_expiry on webhook_messages (expires_at);
