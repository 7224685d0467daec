-- The fixture dbtest's own tests run on; the project's db/ is the user's
-- schema and no test depends on it.
CREATE SCHEMA app;

CREATE TABLE app.accounts (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name  text NOT NULL
);
