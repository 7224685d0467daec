ALTER TABLE posts ALTER COLUMN title TYPE varchar(500);
ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);
ALTER TABLE users ADD CONSTRAINT users_email_key2 UNIQUE USING INDEX users_email_idx;
