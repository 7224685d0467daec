-- dbinit:no-transaction
VACUUM FULL users;
CLUSTER posts USING posts_pkey;
CREATE INDEX CONCURRENTLY posts_title ON posts (title);
VACUUM (ANALYZE) posts;
