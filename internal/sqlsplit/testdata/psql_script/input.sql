\set ON_ERROR_STOP on
\connect app
SELECT 'a backslash in a string is fine: \n';
\i 'other file.sql'
COPY t (a, b) FROM STDIN;
1	it's
2	\N
\.
SELECT format('SELECT %L', x) FROM t \gexec
SELECT 1 \; SELECT 2;
