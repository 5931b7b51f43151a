-- argent auth schema (PostgreSQL): web users with one role each, and the tokens they sign
-- in with. Passwords are stored only as argon2 PHC strings; tokens only as the hex SHA-256
-- of the random token the client holds.

CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL
                  CHECK (role IN ('collector', 'manager', 'compliance', 'evaluator', 'admin')),
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

-- `kind` is `api` (bearer tokens) or `session` (browser cookies).
CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('api', 'session')),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX auth_tokens_user ON auth_tokens(user_name);
CREATE INDEX auth_tokens_expiry ON auth_tokens(expires_at);
