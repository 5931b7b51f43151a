//! Global search (`/search?q=`, `GET /api/search?q=&limit=`): customers by name, id,
//! invoice number or contact email, each hit linking to the customer's page. The query is
//! hostile input: the store binds it as a parameter with its LIKE wildcards escaped
//! (`argent_store::search`); an empty or over-long one is a 400 (the page shows the form
//! again with the message).

use axum::Json;
use axum::extract::State;
use axum::response::Html;
use serde::{Deserialize, Serialize};
use serde_json::json;

use argent_store::search::{MAX_HITS, check_query};
use argent_store::{SearchHit, Store, StoreError};

use super::{Page, encode_query, page};
use crate::auth::{Allowed, Search};
use crate::error::{AppError, AppResult};
use crate::extract::ApiQuery;

/// Hits per search unless `limit` says otherwise.
pub const DEFAULT_HITS: usize = 25;

#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    pub q: Option<String>,
    /// 1..=100 (default 25).
    pub limit: Option<i64>,
}

/// What `GET /api/search` answers.
#[derive(Debug, Serialize)]
pub struct SearchResult {
    pub query: String,
    pub limit: usize,
    pub hits: Vec<Hit>,
}

#[derive(Debug, Serialize)]
pub struct Hit {
    #[serde(flatten)]
    pub hit: SearchHit,
    /// The customer's page.
    pub href: String,
}

fn limit_of(l: Option<i64>) -> AppResult<usize> {
    match l {
        None => Ok(DEFAULT_HITS),
        Some(n) if (1..=MAX_HITS as i64).contains(&n) => Ok(n as usize),
        Some(n) => Err(AppError::BadRequest(format!(
            "limit: {n} is not within 1..={MAX_HITS}"
        ))),
    }
}

async fn run(store: &Store, q: &str, limit: usize) -> AppResult<Vec<Hit>> {
    let hits = store.search(q, limit).await.map_err(|e| match e {
        StoreError::Invalid(why) => AppError::BadRequest(why),
        other => other.into(),
    })?;
    Ok(hits
        .into_iter()
        .map(|hit| Hit {
            href: format!("/accounts/{}", encode_query(&hit.customer_id)),
            hit,
        })
        .collect())
}

/// `GET /api/search?q=&limit=`.
pub async fn api_search(
    State(store): State<Store>,
    _: Allowed<Search>,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> AppResult<Json<SearchResult>> {
    let limit = limit_of(p.limit)?;
    let q = p.q.unwrap_or_default();
    let hits = run(&store, &q, limit).await?;
    Ok(Json(SearchResult {
        query: q.trim().to_string(),
        limit,
        hits,
    }))
}

/// `GET /search?q=`: the form, and the hits when there is a query.
pub async fn show(
    State(store): State<Store>,
    Page(user, _): Page<Search>,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> AppResult<Html<String>> {
    let limit = limit_of(p.limit)?;
    let q = p.q.unwrap_or_default();
    let (hits, problem) = if q.trim().is_empty() {
        (None, None)
    } else {
        match check_query(&q) {
            Err(e) => (None, Some(e.to_string())),
            Ok(_) => (Some(run(&store, &q, limit).await?), None),
        }
    };
    page(
        &user,
        "search",
        "Search customers",
        json!({
            "q": q,
            "problem": problem,
            "searched": hits.is_some(),
            "hits": hits.unwrap_or_default(),
            "limit": limit,
        }),
    )
}
