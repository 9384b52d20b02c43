-- Retention: the background cleaner finds expired rows by age, oldest first, a small batch at a
-- time. These indexes let each batch read only the rows it removes. (event_logs (at) and
-- incoming_calls (received_at) are indexed already.)

-- Ended alarms, oldest end first; active alarms are never removed.
create index alarms_ended on alarms (ended_at) where status <> 'active';
-- Settled notifications; pending and in-flight ones are never removed.
create index notifications_settled on notifications (created_at) where status not in ('pending', 'delivering');
-- The intake's record of received device events (duplicate detection).
create index device_events_by_time on device_events (received_at);
