-- The container tests' own migrations: the project's db/ is the user's
-- schema, and no test depends on what it holds.
CREATE SCHEMA app;
CREATE TABLE app.accounts (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE
);
