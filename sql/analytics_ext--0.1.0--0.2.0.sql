-- analytics_ext 0.1.0 -> 0.2.0 (ALTER EXTENSION analytics_ext UPDATE TO '0.2.0')
--
-- Every change to the SQL surface made after the 0.1.0 release goes here, in the order it is made, and its undoing
-- into analytics_ext--0.2.0--0.1.0.sql. tests/integration/upgrade_test.sh checks that 0.1.0 updated by this script
-- has exactly the schema of a fresh 0.2.0 install, that the downgrade gives exactly a fresh 0.1.0, and that every
-- row survives 0.1.0 -> 0.2.0 -> 0.1.0 -> 0.2.0.
--
-- No change to the SQL surface yet: 0.2.0 has the 0.1.0 schema.
\echo Use "ALTER EXTENSION analytics_ext UPDATE TO '0.2.0'" to load this file. \quit
