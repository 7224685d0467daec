SELECT 'plain; string', 'it''s', '';
SELECT 'C:\'; -- a backslash is an ordinary character in a standard string
SELECT E'escaped \' quote; still inside', E'ends with a backslash \\';
SELECT e'lower-case e\';', namE'\';
SELECT E'continued'
    -- across a comment and a newline, still an E string:
    '\'; still inside';
SELECT 'not continued' /* a block comment stops it */
    '\';
SELECT B'1010', X'1F;', N'national; string', U&'\0441\043B\043E\043D; ok';
SELECT U&"d\0061t\+000061;" FROM "quoted; table" AS "a ""b"" c";
SELECT 1e'x', 1e--not a comment;
SELECT 'last';
