-- Tables created in this file are new: nothing that locks existing tables fires.
CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, nickname text);
CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id), title text NOT NULL);
CREATE INDEX posts_user ON posts (user_id);
ALTER TABLE posts ADD COLUMN body text NOT NULL;
ALTER TABLE posts ALTER COLUMN title SET NOT NULL;
CREATE TABLE legacy (id int);
