SELECT $$semicolon; inside$$;
SELECT $fn$ contains $$ and $other$; and $fn$;
SELECT $a$ $A$ ; $a$; -- tags are case-sensitive
PREPARE q(int) AS SELECT $1, $2::text;
SELECT a$b, foo$$bar FROM t$1;
SELECT $1$$ quoted after a parameter; $$;
SELECT $_tag_1$ ; $_tag_1$, $é$ ; $é$;
SELECT 1 AS "$$", '$$' AS s;
SELECT $notatag;
