-- HTML views (docs/views.md): self-contained documents a browser shows as they are, served by PostgREST (12+)
-- through a media-type domain. PostgREST finds a function returning a domain named like a media type in any schema
-- and serves its result with that Content-Type when the request's Accept header allows it; with
-- `Accept: application/json` (supabase-js' rpc) the same document arrives as a JSON string.
--
-- SECURITY INVOKER and STABLE like every read: row-level security decides what a view shows, and PostgREST may call
-- them with GET. Their Content-Security-Policy allows only their own inline script and style (SHA-256 hashes), so
-- they need no per-call nonce.

CREATE DOMAIN analytics."text/html" AS text;
COMMENT ON DOMAIN analytics."text/html" IS
'An HTML document. PostgREST 12+ serves a function returning this domain with Content-Type: text/html when the request accepts it.';

CREATE FUNCTION analytics.trace_view(trace_id text, max_spans integer DEFAULT 20000, user_id uuid DEFAULT NULL)
RETURNS analytics."text/html"
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT analytics._trace_view(trace_id, max_spans, user_id)::analytics."text/html" $$;

COMMENT ON FUNCTION analytics._trace_view(text, integer, uuid) IS
'Internal: the document of analytics.trace_view as text.';
COMMENT ON FUNCTION analytics.trace_view(text, integer, uuid) IS
$$One trace as a self-contained HTML document (no network access, works in iframe.srcdoc or saved to a file): the span tree beside the waterfall, self time and critical path, tokens and cost per span, errors in red; click a span (or use the arrow keys) for its inputs, outputs, metadata and timing; collapse and expand subtrees. Draws only the rows in sight, so 20,000 spans stay readable; at most max_spans spans (1..100000), depth-first. NULL when the trace does not exist or is not the caller's.
Example: select analytics.trace_view('trace-rag-002');$$;
