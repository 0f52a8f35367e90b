-- Alert rules: an owner's thresholds over ingest failures and trace metrics, evaluated by one function a pg_cron job
-- calls; a breach opens an alert (a row, RLS) announced once with pg_notify('analytics_alerts', json), later breaches
-- of the same episode only update it, the first evaluation without a breach resolves it, and a new episode may open
-- only once the rule's cooldown has passed since the last one was resolved.

CREATE TABLE analytics.alert_rules (
    user_id    uuid             NOT NULL DEFAULT analytics.current_user_id(),
    key        text             NOT NULL,
    metric     text             NOT NULL,
    operator   text             NOT NULL DEFAULT '>',
    threshold  double precision NOT NULL,
    window_length interval      NOT NULL DEFAULT '5 minutes',
    cooldown   interval         NOT NULL DEFAULT '30 minutes',
    enabled    boolean          NOT NULL DEFAULT true,
    created_at timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT alert_rules_pkey PRIMARY KEY (user_id, key),
    CONSTRAINT alert_rules_key_check CHECK (key ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    CONSTRAINT alert_rules_metric_check CHECK (metric IN ('ingest_failures', 'ingest_failure_rate', 'request_count',
        'error_count', 'error_rate', 'latency_p50', 'latency_p90', 'latency_p95', 'latency_p99', 'ttft_p50', 'ttft_p95',
        'input_tokens', 'output_tokens', 'tokens', 'cost')),
    CONSTRAINT alert_rules_operator_check CHECK (operator IN ('>', '>=', '<', '<=')),
    CONSTRAINT alert_rules_threshold_check CHECK (threshold NOT IN ('NaN', 'Infinity', '-Infinity')),
    CONSTRAINT alert_rules_window_check CHECK (window_length > interval '0' AND window_length <= interval '31 days'
        AND extract(month from window_length) = 0 AND extract(year from window_length) = 0),
    CONSTRAINT alert_rules_cooldown_check CHECK (cooldown >= interval '0')
);
COMMENT ON TABLE analytics.alert_rules IS
'An owner''s alert rules: metric operator threshold over the last whole window (ingest_failures: refused ingest calls; ingest_failure_rate: refused spans / (refused spans + spans stored by the calls accepted in the window, counted per minute); the trace metrics of analytics.trace_metrics), evaluated by analytics.evaluate_alert_rules. cooldown: the quiet time after an episode is resolved before the rule may fire again.';

CREATE TABLE analytics.alerts (
    id          uuid             NOT NULL DEFAULT gen_random_uuid(),
    user_id     uuid             NOT NULL DEFAULT analytics.current_user_id(),
    rule_key    text             NOT NULL,
    metric      text             NOT NULL,
    operator    text             NOT NULL,
    threshold   double precision NOT NULL,
    value       double precision NOT NULL,
    status      text             NOT NULL DEFAULT 'firing',
    fired_at    timestamptz      NOT NULL,
    last_seen   timestamptz      NOT NULL,
    resolved_at timestamptz,
    CONSTRAINT alerts_pkey PRIMARY KEY (user_id, id),
    CONSTRAINT alerts_rule_fkey FOREIGN KEY (user_id, rule_key) REFERENCES analytics.alert_rules (user_id, key)
        ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT alerts_status_check CHECK (status IN ('firing', 'resolved')),
    CONSTRAINT alerts_resolved_check CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
-- one open episode per rule
CREATE UNIQUE INDEX alerts_one_firing_idx ON analytics.alerts (user_id, rule_key) WHERE status = 'firing';
CREATE INDEX alerts_user_time_idx ON analytics.alerts (user_id, fired_at);
COMMENT ON TABLE analytics.alerts IS
'Alert episodes of analytics.alert_rules: fired_at (the window end of the first breach), last_seen (of the latest), the value that last breached, resolved_at once an evaluation found no breach. Supabase Realtime can deliver the rows; pg_notify(''analytics_alerts'') announces each new episode once.';

-- ---- the value of a rule's metric over [from_time, to_time) for one owner; NULL: no data ------------------------------
CREATE FUNCTION analytics._alert_metric(metric text, owner uuid, from_time timestamptz, to_time timestamptz)
RETURNS double precision
LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY INVOKER
SET search_path = ''
AS $$
declare
    rejected bigint;
    started bigint;
    m analytics.trace_metrics_row;
begin
    if not isfinite(from_time) or not isfinite(to_time) then
        raise exception 'from_time, to_time: must be finite times, got % and %', from_time, to_time using errcode = '22023';
    end if;
    if metric = 'ingest_failures' then
        return (select count(*) from analytics.ingest_failures f
                where f.user_id = owner and f.failed_at >= from_time and f.failed_at < to_time);
    end if;
    if metric = 'ingest_failure_rate' then
        select coalesce(sum(greatest(coalesce(f.batch_size, 1), 1)), 0) into rejected
        from analytics.ingest_failures f
        where f.user_id = owner and f.failed_at >= from_time and f.failed_at < to_time;
        -- spans stored by the calls accepted in the window (ingest_stats: per minute)
        select coalesce(sum(s.spans), 0) into started from analytics.ingest_stats s
        where s.user_id = owner and s.bucket_start >= from_time and s.bucket_start < to_time;
        return case when rejected + started > 0 then rejected::double precision / (rejected + started) end;
    end if;
    select * into m from analytics._trace_metrics(to_time - from_time, from_time, to_time, user_id => owner) limit 1;
    return case metric
        when 'request_count' then coalesce(m.request_count, 0) when 'error_count' then coalesce(m.error_count, 0)
        when 'error_rate' then m.error_rate
        when 'latency_p50' then m.latency_p50_ms when 'latency_p90' then m.latency_p90_ms
        when 'latency_p95' then m.latency_p95_ms when 'latency_p99' then m.latency_p99_ms
        when 'ttft_p50' then m.ttft_p50_ms when 'ttft_p95' then m.ttft_p95_ms
        when 'input_tokens' then coalesce(m.input_tokens, 0) when 'output_tokens' then coalesce(m.output_tokens, 0)
        when 'tokens' then coalesce(m.total_tokens, 0) when 'cost' then coalesce(m.cost_usd, 0) end;
end
$$;
COMMENT ON FUNCTION analytics._alert_metric(text, uuid, timestamptz, timestamptz) IS
'The value of an alert rule''s metric for one owner over [from_time, to_time); NULL when there is no data (rates and percentiles without spans). Internal: analytics.evaluate_alert_rules.';

-- ---- evaluate_alert_rules: one run of every enabled rule of an owner ------------------------------------------------
CREATE FUNCTION analytics.evaluate_alert_rules(
    as_of   timestamptz DEFAULT now(),
    user_id uuid        DEFAULT NULL
) RETURNS SETOF analytics.alerts
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
#variable_conflict use_column
declare
    owner uuid := coalesce(evaluate_alert_rules.user_id, analytics.current_user_id());
    r analytics.alert_rules;
    open_alert analytics.alerts;
    done analytics.alerts;
    window_end timestamptz;
    v double precision;
    breach boolean;
begin
    if owner is null then
        raise exception 'user_id: no caller identity (request.jwt.claims has no sub); pass user_id => the owner whose rules to evaluate'
            using errcode = '42501';
    end if;
    if as_of is null then
        raise exception 'as_of: is required' using errcode = '22004';
    end if;
    for r in select * from analytics.alert_rules a where a.user_id = owner and a.enabled order by a.key loop
        -- the last whole window before as_of, on a grid of the window's length (as run_anomaly_detection's buckets)
        window_end := date_bin(r.window_length, as_of, timestamptz '2000-01-01 00:00+00');
        v := analytics._alert_metric(r.metric, owner, window_end - r.window_length, window_end);
        breach := case r.operator when '>' then v > r.threshold when '>=' then v >= r.threshold
                                  when '<' then v < r.threshold else v <= r.threshold end;
        select * into open_alert from analytics.alerts a
        where a.user_id = owner and a.rule_key = r.key and a.status = 'firing' for update;
        if coalesce(breach, false) then
            if open_alert.id is not null then
                -- the same episode: remembered, not announced again
                update analytics.alerts a set last_seen = greatest(a.last_seen, window_end), value = v
                where a.user_id = owner and a.id = open_alert.id;
            elsif not exists (select 1 from analytics.alerts a
                              where a.user_id = owner and a.rule_key = r.key and a.status = 'resolved'
                                and a.resolved_at > window_end - r.cooldown) then
                insert into analytics.alerts as a (user_id, rule_key, metric, operator, threshold, value, fired_at, last_seen)
                values (owner, r.key, r.metric, r.operator, r.threshold, v, window_end, window_end)
                on conflict (user_id, rule_key) where status = 'firing' do nothing
                returning a.* into done;
                if done.id is not null then
                    perform pg_catalog.pg_notify('analytics_alerts', jsonb_build_object(
                        'user_id', owner, 'alert_id', done.id, 'rule', r.key, 'metric', r.metric,
                        'operator', r.operator, 'threshold', r.threshold, 'value', v, 'window_start', window_end - r.window_length,
                        'window_end', window_end, 'status', 'firing')::text);
                    return next done;
                end if;
            end if;
        elsif open_alert.id is not null and window_end > open_alert.last_seen then
            update analytics.alerts a set status = 'resolved', resolved_at = window_end
            where a.user_id = owner and a.id = open_alert.id
            returning a.* into done;
            return next done;
        end if;
    end loop;
end
$$;
COMMENT ON FUNCTION analytics.evaluate_alert_rules(timestamptz, uuid) IS
$$Evaluates every enabled rule of the caller (or of user_id, for a scheduled job without a JWT) over its last whole window before as_of: a breach with no open episode opens one (a row in analytics.alerts, announced once with pg_notify('analytics_alerts', json) — unless the rule's cooldown since the last resolved episode has not passed), a breach during an open episode updates it silently, and the first window without a breach resolves it. Returns the alerts opened or resolved by this run. Re-running for the same as_of changes nothing.
Example: select rule_key, status, value from analytics.evaluate_alert_rules(now());$$;
