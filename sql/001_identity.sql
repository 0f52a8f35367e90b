-- Identity: who is calling, read from the same settings PostgREST and Supabase set for every request.
--
-- PostgREST (and therefore Supabase) runs each request in a transaction that does
--   set local role authenticated;
--   select set_config('request.jwt.claims', '<the JWT payload as json>', true);
-- Older PostgREST versions (< 9) set one setting per claim instead: request.jwt.claim.sub.
-- analytics.current_user_id() reads both, exactly like Supabase's auth.uid(), so the same policies
-- work on Supabase, behind plain PostgREST, and in psql (where a DBA can set the claims by hand).

-- Implemented in Rust (src/identity.rs) with exactly the semantics of this SQL, which is what Supabase's auth.uid() is:
--   coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
--            (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
-- Every policy calls it; as a SQL function with a SET clause it was re-planned in every query (about 40 us). No SET
-- clause here either: C code that resolves no names needs no search_path, and the clause made every call save,
-- set and restore the setting (about 1 us; the rate limiter and every policy call it).
CREATE FUNCTION analytics.current_user_id() RETURNS uuid
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'current_user_id_wrapper';

COMMENT ON FUNCTION analytics.current_user_id() IS
$$The calling user's id: the "sub" claim of the request JWT, as uuid (same semantics as Supabase's auth.uid()).
Reads request.jwt.claim.sub (PostgREST < 9) or request.jwt.claims ->> 'sub' (PostgREST >= 9, Supabase).
NULL when no claims are set (anonymous / plain psql). Malformed claims JSON raises 22P02; a sub that is not a uuid raises 22P02.
Every row-level-security policy of analytics_ext is written as user_id = (select analytics.current_user_id()).
Example: select set_config('request.jwt.claims', '{"sub":"8d0f...","role":"authenticated"}', true); select analytics.current_user_id();$$;

-- Same as: coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
--                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))
CREATE FUNCTION analytics.current_role_claim() RETURNS text
LANGUAGE c STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'current_role_claim_wrapper';

COMMENT ON FUNCTION analytics.current_role_claim() IS
$$The "role" claim of the request JWT (same semantics as Supabase's auth.role()): 'authenticated', 'anon', 'service_role', ...
NULL when no claims are set. Malformed claims JSON raises 22P02.
Example: select analytics.current_role_claim();$$;

-- Keeps updated_at honest for every table that has one, whoever writes the row (PostgREST PATCH, upserts, psql).
CREATE FUNCTION analytics.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ''
AS $$
begin
    new.updated_at := now();
    return new;
end
$$;

COMMENT ON FUNCTION analytics.touch_updated_at() IS
'Trigger function: sets updated_at to now() on every UPDATE of an analytics_ext table. Internal.';
