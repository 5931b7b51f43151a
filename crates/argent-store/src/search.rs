//! Global search: customers by name, id, invoice number or contact email.
//!
//! **The query is hostile input.** It is only ever bound as a parameter, never written
//! into SQL, and its LIKE wildcards are escaped ([`like_pattern`]: `\` → `\\`, `%` → `\%`,
//! `_` → `\_`, matched with `ESCAPE '\'`), so `%`, `_`, quotes and backslashes match
//! themselves. It is trimmed; empty or longer than [`MAX_QUERY_CHARS`] is refused
//! (`Invalid`). Matching is a case-insensitive substring match: SQLite's `LIKE` (which folds
//! ASCII letters only) and PostgreSQL's `ILIKE` (which folds by the database's locale).
//! Contact emails are found by a substring match on the stored contacts and then checked
//! against each contact's email in Rust, so a name or phone number in the contacts never
//! counts as an email hit.
//!
//! **Bounded.** At most `limit` hits (1..=[`MAX_HITS`]), each query reading at most that
//! many rows: exact customer-id matches first, then customers by id or name, then invoices,
//! then emails; one hit per (customer, field, value).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use argent_core::Contact;

use crate::{Backend, Result, Store, StoreError, dispatch, from_json};

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// The most hits one search returns.
pub const MAX_HITS: usize = 100;

/// One customer a search found, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub customer_id: String,
    pub customer_name: String,
    /// `id`, `name`, `invoice` or `email`.
    pub matched: String,
    /// The value that matched (the id, name, invoice number or address).
    pub value: String,
}

/// `%<q with \, %, _ escaped>%`.
pub fn like_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The trimmed query, or `Invalid` naming what is wrong with it.
pub fn check_query(q: &str) -> Result<&str> {
    let q = q.trim();
    if q.is_empty() {
        return Err(StoreError::Invalid("q: the search is empty".into()));
    }
    let n = q.chars().count();
    if n > MAX_QUERY_CHARS {
        return Err(StoreError::Invalid(format!(
            "q: {n} characters; at most {MAX_QUERY_CHARS}"
        )));
    }
    if q.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "q: control characters are not searched for".into(),
        ));
    }
    Ok(q)
}

impl Store {
    /// Customers matching `q` (see the module docs), at most `limit` hits.
    pub async fn search(&self, q: &str, limit: usize) -> Result<Vec<SearchHit>> {
        let q = check_query(q)?;
        let limit = limit.clamp(1, MAX_HITS);
        let n = i64::try_from(limit).unwrap_or(100);
        let pattern = like_pattern(q);
        let mut hits: Vec<SearchHit> = Vec::new();
        let push = |h: SearchHit, hits: &mut Vec<SearchHit>| {
            if hits.len() < limit
                && !hits.iter().any(|x| {
                    x.customer_id == h.customer_id && x.matched == h.matched && x.value == h.value
                })
            {
                hits.push(h);
            }
        };
        // Exact id first (case-insensitive).
        // SQLite's LIKE folds ASCII case by itself (as its LOWER does); PostgreSQL's ILIKE
        // folds by the database's locale, as its LOWER does.
        let (like, exact) = match self.backend() {
            Backend::Sqlite => ("LIKE", "id = $1 COLLATE NOCASE"),
            Backend::Postgres => ("ILIKE", "LOWER(id) = LOWER($1)"),
        };
        let exact = format!("SELECT id, name FROM customers WHERE {exact} LIMIT 1");
        let by_customer = format!(
            "SELECT id, name FROM customers \
             WHERE id {like} $1 ESCAPE '\\' OR name {like} $1 ESCAPE '\\' \
             ORDER BY name, id LIMIT $2"
        );
        let by_invoice = format!(
            "SELECT i.number, c.id, c.name FROM invoices i \
             JOIN customers c ON c.id = i.customer_id \
             WHERE i.number {like} $1 ESCAPE '\\' ORDER BY i.number LIMIT $2"
        );
        let by_contacts = format!(
            "SELECT id, name, contacts FROM customers \
             WHERE contacts {like} $1 ESCAPE '\\' ORDER BY name, id LIMIT $2"
        );
        type Rows = (
            Vec<(String, String)>,
            Vec<(String, String)>,
            Vec<(String, String, String)>,
            Vec<(String, String, String)>,
        );
        // The four reads are independent: each on a pooled connection of its own, at once.
        let (ex, cust, inv, cont): Rows = dispatch!(self, |pool| {
            let (ex_rows, cust_rows, inv_rows, cont_rows) = tokio::try_join!(
                sqlx::query(&exact).bind(q).fetch_all(pool),
                sqlx::query(&by_customer)
                    .bind(pattern.as_str())
                    .bind(n)
                    .fetch_all(pool),
                sqlx::query(&by_invoice)
                    .bind(pattern.as_str())
                    .bind(n)
                    .fetch_all(pool),
                sqlx::query(&by_contacts)
                    .bind(pattern.as_str())
                    .bind(n)
                    .fetch_all(pool),
            )?;
            let mut ex = Vec::new();
            for r in ex_rows {
                ex.push((r.try_get("id")?, r.try_get("name")?));
            }
            let mut cust = Vec::new();
            for r in cust_rows {
                cust.push((r.try_get("id")?, r.try_get("name")?));
            }
            let mut inv = Vec::new();
            for r in inv_rows {
                inv.push((r.try_get("number")?, r.try_get("id")?, r.try_get("name")?));
            }
            let mut cont = Vec::new();
            for r in cont_rows {
                cont.push((r.try_get("id")?, r.try_get("name")?, r.try_get("contacts")?));
            }
            (ex, cust, inv, cont)
        });
        for (id, name) in ex {
            push(
                SearchHit {
                    value: id.clone(),
                    customer_id: id,
                    customer_name: name,
                    matched: "id".into(),
                },
                &mut hits,
            );
        }
        let needle = q.to_lowercase();
        for (id, name) in cust {
            let (matched, value) = if id.to_lowercase().contains(&needle) {
                ("id", id.clone())
            } else {
                ("name", name.clone())
            };
            push(
                SearchHit {
                    customer_id: id,
                    customer_name: name,
                    matched: matched.into(),
                    value,
                },
                &mut hits,
            );
        }
        for (number, id, name) in inv {
            push(
                SearchHit {
                    customer_id: id,
                    customer_name: name,
                    matched: "invoice".into(),
                    value: number,
                },
                &mut hits,
            );
        }
        for (id, name, contacts) in cont {
            let contacts: Vec<Contact> = from_json("customer contacts", &id, &contacts)?;
            for email in contacts.iter().filter_map(|c| c.email.as_deref()) {
                if email.to_lowercase().contains(&needle) {
                    push(
                        SearchHit {
                            customer_id: id.clone(),
                            customer_name: name.clone(),
                            matched: "email".into(),
                            value: email.to_string(),
                        },
                        &mut hits,
                    );
                }
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn wildcards_and_the_escape_character_are_escaped() {
        assert_eq!(like_pattern("a%b_c\\d'e"), "%a\\%b\\_c\\\\d'e%");
        assert_eq!(like_pattern(""), "%%");
    }

    #[test]
    fn empty_long_and_control_queries_are_refused() {
        assert!(check_query("   ").is_err());
        assert!(check_query(&"x".repeat(MAX_QUERY_CHARS + 1)).is_err());
        assert!(check_query("a\u{0}b").is_err());
        assert_eq!(check_query("  ann ").unwrap(), "ann");
    }
}
