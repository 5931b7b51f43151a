-- argent account facts (PostgreSQL): what a policy must know about an account beyond the
-- four contact-stopping flags (argent_core::facts::AccountFacts), as one JSON document per
-- customer. An import never writes it; a collector's edit (audited) or a facts file does.
ALTER TABLE customers ADD COLUMN facts TEXT NOT NULL DEFAULT '{}';
