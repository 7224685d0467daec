-- CREATE INDEX in a comment is not a statement.
SELECT 'CREATE INDEX x ON users (name)';
CREATE INDEX users_name ON users (name);
