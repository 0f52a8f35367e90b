-- Retention: how long each owner's spans are kept, enforced by analytics.apply_retention(), which a pg_cron job
-- calls (docs/operations.md). A plan's limit is set per owner by the DBA or a service_role back end; owners read
-- their own policy and cannot change it (900_security.sql revokes their writes).

CREATE TABLE analytics.retention_policies (
    user_id    uuid PRIMARY KEY,
    keep_days  integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT retention_policies_keep_days_check CHECK (keep_days BETWEEN 1 AND 36500)
);
COMMENT ON TABLE analytics.retention_policies IS
'How many days of spans each owner keeps (e.g. 30 for a free plan); analytics.apply_retention() deletes older spans. Written by the DBA or service_role; owners read their own.';

CREATE FUNCTION analytics.apply_retention(default_keep_days integer DEFAULT NULL, as_of timestamptz DEFAULT now())
RETURNS TABLE (user_id uuid, keep_days integer, spans_deleted bigint)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER
SET search_path = ''
AS $$
begin
    if default_keep_days is not null and (default_keep_days < 1 or default_keep_days > 36500) then
        raise exception 'default_keep_days: must be between 1 and 36500 days, or NULL to keep spans of owners without a policy, got %',
            default_keep_days using errcode = '22023';
    end if;
    if as_of is null then
        raise exception 'as_of: is required' using errcode = '22004';
    end if;
    -- each owner's limit: their policy, else the default (none: kept); spans that started before it are deleted
    return query
    with limits as (
        select o.user_id, coalesce(p.keep_days, default_keep_days) as keep_days
        from (select distinct t.user_id from analytics.llm_traces t) o
        left join analytics.retention_policies p on p.user_id = o.user_id
    ), deleted as (
        delete from analytics.llm_traces t
        using limits l
        where t.user_id = l.user_id and l.keep_days is not null
          and t.start_time < apply_retention.as_of - make_interval(days => l.keep_days)
        returning t.user_id
    )
    select l.user_id, l.keep_days, count(d.user_id)
    from limits l left join deleted d on d.user_id = l.user_id
    where l.keep_days is not null
    group by l.user_id, l.keep_days
    order by l.user_id;
end
$$;
COMMENT ON FUNCTION analytics.apply_retention(integer, timestamptz) IS
$$Deletes every owner's spans that started more than keep_days before as_of: keep_days from analytics.retention_policies, else default_keep_days (NULL: spans of owners without a policy are kept). Returns one row per owner with a limit: user_id, keep_days, spans_deleted. For the DBA or a pg_cron job (not granted to API roles); under row-level security a caller deletes only rows it may see.
Example: select * from analytics.apply_retention(default_keep_days => 90);$$;
