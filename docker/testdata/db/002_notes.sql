CREATE TABLE app.notes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES app.accounts,
    body       text NOT NULL
);
