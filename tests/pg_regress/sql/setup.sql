-- Shared by the regression tests (runs first; tests/integration/policy_mutation_test.sh runs it too).
-- regress.attempt(sql, args, with_message): runs one statement and answers 'ok <rows>' or its SQLSTATE (with_message: with the
-- message), instead of aborting the transaction, so a test can show what a caller gets.
create schema regress;
grant usage on schema regress to public;
create function regress.attempt(stmt text, args jsonb default null, with_message boolean default true) returns text
language plpgsql as $$
declare
    n bigint;
begin
    execute stmt using args;
    get diagnostics n = row_count;
    return 'ok ' || n;
exception when others then
    return case when with_message then sqlstate || ': ' || sqlerrm else sqlstate end;
end
$$;
grant execute on function regress.attempt(text, jsonb, boolean) to public;

-- The other tests are about what they test, not about rate limits, and run on a real clock: the built-in actions get
-- unlimited defaults here (rate_limits.sql removes them and tests the limits with a test clock).
insert into analytics.rate_limits (action, max_calls, per)
values ('ingest', null, '1 minute'), ('create_experiment', null, '1 hour'), ('run_anomaly_detection', null, '1 hour');
