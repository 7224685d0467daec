ALTER TABLE users ADD COLUMN status text;
UPDATE users SET status = 'active';
UPDATE users SET status = 'x' WHERE id = 1;
DO $$
BEGIN
  EXECUTE 'CREATE INDEX users_status_x ON users (status)';
END
$$;
