-- Home -> telecom: rules, the device events they match, the alarms they start and the calls
-- those alarms place. The calls table is also the durable work queue of the escalation: a call
-- row with status 'queued' and a due time IS the job, written in the same transaction as the
-- event (or the previous call's outcome) that causes it.

create table rules (
  id bigint generated always as identity primary key,
  name text not null,
  enabled boolean not null default true,
  event_type text not null,
  -- A rule matches events of one device, or of every device bound to a number.
  device_id text,
  msisdn text,
  action jsonb not null,
  cooldown_s integer not null default 60 check (cooldown_s >= 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((device_id is null) <> (msisdn is null))
);
create index rules_by_device on rules (event_type, device_id) where device_id is not null;
create index rules_by_msisdn on rules (event_type, msisdn) where msisdn is not null;

create table device_events (
  -- The sender's own id: the same event_id again is a duplicate, answered with the first outcome.
  event_id text primary key,
  device_id text not null,
  event_type text not null,
  occurred_at timestamptz,
  received_at timestamptz not null default now(),
  data jsonb not null default '{}',
  correlation_id text not null,
  matched_rules integer not null default 0,
  outcome jsonb not null default '{}'
);
create index device_events_by_device on device_events (device_id, received_at);

create table alarms (
  id uuid primary key,
  seq bigint generated always as identity unique,
  rule_id bigint not null,
  device_id text not null,
  msisdn text,
  event_id text not null,
  event_type text not null,
  status text not null check (status in ('active', 'resolved', 'exhausted', 'canceled')),
  -- The rule's action as it was when the alarm started: editing a rule never changes a running alarm.
  action jsonb not null,
  correlation_id text not null,
  started_at timestamptz not null,
  ended_at timestamptz,
  end_reason text
);
-- At most one active alarm per rule and device, whichever gateway instance tries to start another.
create unique index alarms_one_active on alarms (rule_id, device_id) where status = 'active';
create index alarms_by_rule_device on alarms (rule_id, device_id, started_at desc);
create index alarms_by_status on alarms (status, seq);
create index alarms_by_device on alarms (device_id, seq);

create table calls (
  -- Also the FreeSWITCH channel uuid (origination_uuid), so a call can be found on the switch.
  id uuid primary key,
  seq bigint generated always as identity unique,
  alarm_id uuid not null references alarms (id),
  -- Position of the number in the rule's escalation list, and the attempt on that number.
  position integer not null,
  attempt integer not null,
  to_number text not null,
  status text not null check (status in ('queued', 'dialing', 'ringing', 'answered', 'completed', 'busy', 'no_answer', 'rejected', 'failed', 'canceled')),
  acknowledged boolean not null default false,
  hangup_cause text,
  sip_code integer,
  -- Not dialed before this time (retry delays).
  due_at timestamptz not null,
  -- The gateway instance that dialed it, for reconciliation after a crash.
  claimed_by text,
  queued_at timestamptz not null,
  dialing_at timestamptz,
  ringing_at timestamptz,
  answered_at timestamptz,
  ended_at timestamptz,
  -- A call in flight past this time is reconciled with the switch.
  deadline_at timestamptz,
  correlation_id text not null,
  -- Set when this call re-dials one whose outcome was lost (a crash or a dropped connection while
  -- it was in flight, and the switch no longer knew the channel): the same attempt, made again.
  redial_of uuid references calls (id)
);
create index calls_due on calls (due_at) where status = 'queued';
create index calls_in_flight on calls (deadline_at) where status in ('dialing', 'ringing', 'answered');
create index calls_by_alarm on calls (alarm_id, seq);
create index calls_by_status on calls (status, seq);
create index calls_by_number on calls (to_number, seq);

create table gateway_instances (
  id text primary key,
  started_at timestamptz not null,
  heartbeat_at timestamptz not null
);
