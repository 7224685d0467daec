-- SQL-standard function bodies (PostgreSQL 14+): the semicolons inside
-- BEGIN ATOMIC ... END do not end the CREATE statement.
CREATE OR REPLACE FUNCTION grade(score int) RETURNS text
LANGUAGE sql IMMUTABLE
BEGIN ATOMIC
    SELECT CASE
        WHEN score >= 90 THEN 'A'
        WHEN score >= 80 THEN 'B'
        ELSE CASE WHEN score >= 50 THEN 'C' ELSE 'F' END
    END;
END;

CREATE PROCEDURE add_points(p_user int, p_points int)
LANGUAGE sql
BEGIN ATOMIC
    UPDATE users SET points = points + p_points WHERE id = p_user;
    INSERT INTO points_log (user_id, points) VALUES (p_user, p_points);
END;

create function one() returns int language sql return 1;

CREATE FUNCTION lookup(k text) RETURNS TABLE (begin int, "end" int)
LANGUAGE sql
BEGIN ATOMIC
    SELECT lo, hi FROM ranges WHERE key = k;
END;

CALL add_points(1, 10);
