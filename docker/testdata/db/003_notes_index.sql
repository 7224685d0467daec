-- dbinit:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS notes_account_id ON app.notes (account_id);
