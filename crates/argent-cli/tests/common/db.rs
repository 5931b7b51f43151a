//! A database for the `argent` processes a test runs: a SQLite file in a temp dir, and a
//! PostgreSQL schema of its own when ARGENT_TEST_POSTGRES_URL is set (dropped after).
//! Included by the process tests with `#[path = "common/db.rs"] mod db;`.

#![allow(dead_code)] // each test file uses what it needs

use argent_store::Store;

pub struct Db {
    pub label: &'static str,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Db {
    /// SQLite, and PostgreSQL too when configured; `prefix` names the schema
    /// (`<prefix>_<pid>_<nanos>`) and the SQLite file.
    pub async fn all(prefix: &str) -> Vec<Db> {
        let dir = tempfile::tempdir().unwrap();
        let mut out = vec![Db {
            label: "sqlite",
            url: dir
                .path()
                .join(format!("{prefix}.db"))
                .to_str()
                .unwrap()
                .to_string(),
            _dir: Some(dir),
            pg: None,
        }];
        if let Ok(base) = std::env::var("ARGENT_TEST_POSTGRES_URL")
            && !base.is_empty()
        {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let schema = format!("{prefix}_{}_{nanos}", std::process::id());
            let s = Store::open_postgres_schema(&base, &schema).await.unwrap();
            s.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            out.push(Db {
                label: "postgres",
                url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                _dir: None,
                pg: Some((base, schema)),
            });
        }
        out
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }

    pub async fn drop_schema(self) {
        if let Some((base, schema)) = &self.pg {
            let _ = Store::drop_postgres_schema(base, schema).await;
        }
    }
}
