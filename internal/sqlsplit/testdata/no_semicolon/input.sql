-- a file without any semicolon
SELECT now()
-- trailing comment
