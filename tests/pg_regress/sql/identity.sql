-- analytics.current_user_id(): the JWT "sub" claim as uuid, with the semantics of Supabase's auth.uid().

-- no claims at all (plain psql, anonymous): NULL
select analytics.current_user_id() is null as anonymous;

-- PostgREST >= 9 / Supabase: request.jwt.claims holds the whole JWT payload
begin;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as claims_set;
select analytics.current_user_id(), analytics.current_role_claim();
rollback;

-- PostgREST < 9: one setting per claim; it wins over request.jwt.claims, as in auth.uid()
begin;
select set_config('request.jwt.claim.sub', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', true) is not null as claim_set;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"}', true) is not null as claims_set;
select analytics.current_user_id();
rollback;

-- empty settings are "not set" (PostgREST resets them to '' between requests on a pooled connection)
begin;
select set_config('request.jwt.claim.sub', '', true) is not null, set_config('request.jwt.claims', '', true) is not null;
select analytics.current_user_id() is null as anonymous;
rollback;

-- claims without a sub (e.g. an anon key): NULL
begin;
select set_config('request.jwt.claims', '{"role":"anon"}', true) is not null as claims_set;
select analytics.current_user_id() is null as anonymous, analytics.current_role_claim();
rollback;

-- a sub that is not a uuid: error 22P02 (invalid_text_representation), as auth.uid() does
\set VERBOSITY sqlstate
begin;
select set_config('request.jwt.claims', '{"sub":"user-42"}', true) is not null as claims_set;
select analytics.current_user_id();
rollback;

-- malformed claims JSON: error 22P02 as well. We deliberately do not turn a broken JWT setup into "anonymous".
-- (every time: a claims text that does not parse is not remembered)
begin;
select set_config('request.jwt.claims', '{"sub": ', true) is not null as claims_set;
select analytics.current_user_id();
rollback;
begin;
select set_config('request.jwt.claims', '{"sub": ', true) is not null as claims_set;
select analytics.current_role_claim();
rollback;
\set VERBOSITY default

-- the claims JSON is parsed once per claims text and read again whenever the text changes: a pooled connection
-- serves one user after another, and a role claim is never answered from another user's claims
begin;
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice;
select analytics.current_user_id(), analytics.current_role_claim();
select set_config('request.jwt.claims', '{"sub":"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb","role":"service_role"}', true) is not null as bob;
select analytics.current_user_id(), analytics.current_role_claim();
select set_config('request.jwt.claims', '{"sub":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","role":"authenticated"}', true) is not null as alice_again;
select analytics.current_user_id(), analytics.current_role_claim();
select set_config('request.jwt.claims', '{"role":"anon"}', true) is not null as anon_key;
select analytics.current_user_id() is null as anonymous, analytics.current_role_claim();
rollback;

-- the function is STABLE (evaluated once per statement when used as an InitPlan); no SET clause (C code that
-- resolves no names: the clause only made every call save and restore search_path)
select p.proname, p.provolatile, p.proparallel, p.prosecdef, p.proconfig
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = 'analytics' and p.proname in ('current_user_id', 'current_role_claim')
order by 1;
