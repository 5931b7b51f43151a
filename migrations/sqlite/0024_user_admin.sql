-- argent user administration (SQLite): a user can be disabled (signed out everywhere, no
-- sign-in, no token accepted) and enabled again; an admin's unlock of a user's sign-in
-- lockout is remembered so every server process lifts it (the lockout itself is counted in
-- the server's memory). Instants are RFC 3339 TEXT in UTC; NULL: never.
ALTER TABLE users ADD COLUMN disabled_at TEXT;
ALTER TABLE users ADD COLUMN disabled_by TEXT;
ALTER TABLE users ADD COLUMN unlocked_at TEXT;
