-- Telecom -> home: calls to a subscriber's number, and the notifications that tell the speakers
-- bound to it. A notification row is the durable delivery job, written in the same transaction as
-- the call state that causes it.

create table incoming_calls (
  -- The TAS's (or FreeSWITCH's) own id of the call.
  call_id text primary key,
  seq bigint generated always as identity unique,
  caller text not null,
  caller_name text,
  callee text not null,
  state text not null check (state in ('ringing', 'answered', 'ended')),
  source text not null check (source in ('api', 'freeswitch')),
  correlation_id text not null,
  received_at timestamptz not null,
  ringing_at timestamptz,
  answered_at timestamptz,
  ended_at timestamptz
);
create index incoming_calls_by_callee on incoming_calls (callee, seq);
create index incoming_calls_by_time on incoming_calls (received_at);

create table notifications (
  -- Also the Standard Webhooks message id (webhook-id), stable across retries.
  id uuid primary key,
  seq bigint generated always as identity unique,
  call_id text not null references incoming_calls (call_id),
  device_id text not null,
  type text not null check (type in ('incoming_call.ringing', 'incoming_call.answered', 'incoming_call.ended')),
  -- ringing 1, answered 2, ended 3: a notification waits until those before it, for the same call
  -- and device, are settled.
  step smallint not null,
  endpoint text not null,
  payload jsonb not null,
  status text not null check (status in ('pending', 'delivering', 'delivered', 'failed', 'expired', 'gone', 'superseded')),
  attempts integer not null default 0,
  due_at timestamptz not null,
  expires_at timestamptz not null,
  created_at timestamptz not null,
  delivered_at timestamptz,
  latency_ms integer,
  last_error text,
  claimed_by text,
  correlation_id text not null,
  unique (call_id, device_id, type)
);
create index notifications_due on notifications (due_at) where status = 'pending';
create index notifications_by_call on notifications (call_id, device_id, step);
create index notifications_delivering on notifications (claimed_by) where status = 'delivering';

-- A speaker endpoint that answered 410 Gone gets nothing more until its endpoint is changed.
alter table devices add column endpoint_gone_at timestamptz;
