ALTER TABLE users ADD COLUMN email text NOT NULL;
ALTER TABLE users ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE users
  ADD COLUMN token uuid DEFAULT gen_random_uuid();
