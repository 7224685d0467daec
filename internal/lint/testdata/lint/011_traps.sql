CREATE TABLE "create index" ("drop table" int, "vacuum full" text);
SELECT $tag$ ALTER TABLE users ADD COLUMN x int NOT NULL; DROP TABLE users; $tag$;
COMMENT ON TABLE users IS 'DROP TABLE users; VACUUM FULL users; UPDATE users SET a = 1';
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  UPDATE users SET status = 'touched';
  RETURN NEW;
END
$fn$;
/* ALTER TABLE users ALTER COLUMN id TYPE int; */
