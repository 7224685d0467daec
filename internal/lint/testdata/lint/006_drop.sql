DROP TABLE legacy;
ALTER TABLE users DROP COLUMN nickname;
ALTER TABLE users RENAME COLUMN name TO full_name;
CREATE TABLE scratch (id int);
DROP TABLE scratch;
