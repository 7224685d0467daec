-- dbinit:lint-ignore index-not-concurrent
CREATE INDEX users_status ON users (status);
-- The table is small and rarely written:
-- dbinit:lint-ignore set-not-null
ALTER TABLE users ALTER COLUMN status SET NOT NULL;
-- dbinit:lint-ignore no-such-rule
ALTER TABLE posts ALTER COLUMN body SET NOT NULL;
