CREATE TABLE a (id int);
CREATE FUNCTION broken() RETURNS void LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM 1;
END;
$$;
CREATE TABLE b (id int);
