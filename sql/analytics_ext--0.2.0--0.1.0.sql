-- analytics_ext 0.2.0 -> 0.1.0 (ALTER EXTENSION analytics_ext UPDATE TO '0.1.0'): undoes
-- analytics_ext--0.1.0--0.2.0.sql, in reverse order. A step that would lose data (a column, table or setting that
-- 0.1.0 has no place for, holding values) refuses with an error naming what would be lost, before changing anything.
--
-- No change to undo yet: 0.2.0 has the 0.1.0 schema.
\echo Use "ALTER EXTENSION analytics_ext UPDATE TO '0.1.0'" to load this file. \quit
