-- Foundation: API keys, the device registry and the event log.

create table api_keys (
  id bigint generated always as identity primary key,
  role text not null check (role in ('admin', 'webhook', 'telephony')),
  name text not null,
  -- The first characters of the key, kept to find its row and to show which key it was.
  key_prefix text not null,
  -- SHA-256 of the whole key; the key itself is never stored.
  key_hash bytea not null,
  created_at timestamptz not null default now(),
  revoked_at timestamptz
);
create index api_keys_active_prefix on api_keys (key_prefix) where revoked_at is null;

create table devices (
  id bigint generated always as identity primary key,
  device_id text not null unique,
  type text not null,
  msisdn text not null,
  name text,
  endpoint text,
  metadata jsonb not null default '{}',
  -- Standard Webhooks signing secret (whsec_...) of a speaker; symmetric, so kept readable.
  signing_secret text,
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index devices_by_msisdn on devices (msisdn, id);
create index devices_by_type on devices (type, id);

create table event_logs (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  type text not null,
  status text not null,
  device_id text,
  msisdn text,
  correlation_id text,
  request_id text,
  details jsonb not null default '{}'
);
create index event_logs_by_type on event_logs (type, id);
create index event_logs_by_device on event_logs (device_id, id) where device_id is not null;
create index event_logs_by_msisdn on event_logs (msisdn, id) where msisdn is not null;
create index event_logs_by_correlation on event_logs (correlation_id, id) where correlation_id is not null;
create index event_logs_by_time on event_logs (at);
