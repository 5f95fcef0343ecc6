//! RT 5's REST 2.0 as the target needs it: the client (auth token, `/REST/2.0` root), the
//! paged collections (`page`/`per_page`, `next_page` until absent, `pages`/`total` may be
//! `null`), one user by id with its `ETag`, and JSON searches.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};

use crate::http::{Auth, HttpClient, HttpClientBuilder, HttpError, Page, Request};
use crate::model::{HttpSettings, RateLimit};

/// RT documents no rate limit (it is self-hosted); 20 requests a second keeps a list of a
/// thousand users near a minute without crowding the server's workers.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    count: 1200,
    per: Duration::from_secs(60),
};
/// Items asked for per page: RT's maximum (larger values are silently clamped to it).
pub const PER_PAGE: usize = 100;

/// The REST 2.0 root under an RT base URL (`https://rt.example.com` → `.../REST/2.0`).
pub fn rest_root(base_url: &str) -> String {
    format!("{}/REST/2.0", base_url.trim().trim_end_matches('/'))
}

/// The HTTP client of an RT instance: `Authorization: token <token>` on every request.
pub fn client(
    name: &str,
    base_url: &str,
    token: SecretString,
    settings: HttpSettings,
) -> HttpClientBuilder {
    HttpClient::builder(name, rest_root(base_url))
        .auth(Auth::Scheme {
            scheme: "token".to_string(),
            token,
        })
        .rate_limit(settings.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT))
        .timeout(settings.timeout)
}

/// The number of a page request (`page`, 1 when absent).
fn page_of(req: &Request) -> u64 {
    req.query
        .iter()
        .find(|(k, _)| k == "page")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(1)
}

/// Every item of a paged collection, starting at `first` (which carries `per_page` and
/// `page=1`). The next page is asked for while the answer has a `next_page` (its URL is not
/// followed: RT 5.0.3 writes a stray `&=&` into it); a list that ends before its own `total`
/// is an error, never a short list.
pub(super) async fn collect(client: &HttpClient, first: Request) -> Result<Vec<Value>, HttpError> {
    let mut seen: u64 = 0;
    client
        .collect_pages(first, |req, resp| {
            let body: Value = resp.json()?;
            let what = resp.what.clone();
            let decode = |cause: &str| HttpError::Decode {
                what: what.clone(),
                cause: format!("{cause}; expected an RT 5 collection (`items`, `next_page`)"),
            };
            let items = body
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| decode("no `items` list"))?
                .clone();
            seen += items.len() as u64;
            let total = match body.get("total") {
                None | Some(Value::Null) => None,
                Some(t) => Some(t.as_u64().ok_or_else(|| decode("`total` is not a count"))?),
            };
            let more = matches!(body.get("next_page"), Some(Value::String(s)) if !s.is_empty());
            let short = |cause: String| client.inconsistent(what.clone(), cause);
            match total {
                Some(t) if seen > t => {
                    return Err(short(format!(
                        "it holds {seen} item(s) so far but announced {t} in total"
                    )));
                }
                Some(t) if seen < t && (!more || items.is_empty()) => {
                    return Err(short(format!(
                        "the list ended after {seen} item(s), but the server announced {t} in total"
                    )));
                }
                _ => {}
            }
            let next =
                (more && !items.is_empty()).then(|| req.clone().query("page", page_of(req) + 1));
            Ok(Page { items, next })
        })
        .await
}

/// A JSON search of users on one field (equality, which RT compares without regard to case),
/// disabled users included, asking for the numeric `id`.
pub(super) fn search(field: &str, value: &str, per_page: usize) -> Request {
    Request::post("users")
        .query("fields", "id,Name")
        .query("find_disabled_rows", 1)
        .query("per_page", per_page)
        .query("page", 1)
        .json(json!([{ "field": field, "value": value }]))
        // A search writes nothing: safe to resend.
        .idempotent(true)
}

/// Every user, disabled ones included, with the numeric `id` and the `Name`.
pub(super) fn all_users(per_page: usize) -> Request {
    Request::get("users")
        .query("fields", "id,Name")
        .query("find_disabled_rows", 1)
        .query("per_page", per_page)
        .query("page", 1)
}

/// The messages of a `PUT`'s answer (RT answers a JSON array of human messages).
pub(super) fn messages(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items
            .iter()
            .map(|m| match m {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Ok(Value::String(s)) => vec![s],
        Ok(Value::Object(o)) => o
            .get("message")
            .and_then(Value::as_str)
            .map(|m| vec![m.to_string()])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_root_is_under_the_base_url() {
        assert_eq!(
            rest_root("https://rt.example.com/"),
            "https://rt.example.com/REST/2.0"
        );
        assert_eq!(
            rest_root("http://127.0.0.1:8080/rt"),
            "http://127.0.0.1:8080/rt/REST/2.0"
        );
    }

    /// RT hides `total` and `pages` (null) from callers who cannot see every result: the
    /// pages are followed by `next_page` alone, built from `page`, not from RT's link.
    #[tokio::test]
    async fn pages_are_followed_by_next_page_when_total_is_null() {
        use axum::extract::Query;
        async fn users(Query(q): Query<Vec<(String, String)>>) -> axum::Json<Value> {
            let page: u64 = q
                .iter()
                .find(|(k, _)| k == "page")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let items: Vec<Value> = match page {
                1 => vec![json!({"id": 1}), json!({"id": 2})],
                2 => vec![json!({"id": 3}), json!({"id": 4})],
                3 => vec![json!({"id": 5})],
                _ => vec![],
            };
            let next =
                (page < 3).then(|| format!("http://elsewhere/REST/2.0/users?=&page={}", page + 1));
            axum::Json(
                json!({"page": page, "per_page": 2, "total": null, "pages": null,
                "next_page": next, "items": items}),
            )
        }
        let served = crate::testkit::serve_with_faults(
            axum::Router::new().route("/REST/2.0/users", axum::routing::get(users)),
        )
        .await;
        let client = crate::testkit::builder(&rest_root(&served.origin))
            .build()
            .unwrap();
        let items = collect(&client, all_users(2)).await.unwrap();
        assert_eq!(items.len(), 5);
        assert_eq!(
            served.log.lines(),
            (1..=3)
                .map(|p| format!(
                    "GET /REST/2.0/users?fields=id,Name&find_disabled_rows=1&per_page=2&page={p}"
                ))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn put_answers_read_as_messages() {
        assert_eq!(
            messages(br#"["User 27: RealName changed from 'a' to 'b'","User enabled"]"#),
            vec!["User 27: RealName changed from 'a' to 'b'", "User enabled"]
        );
        assert_eq!(
            messages(br#"{"message":"Name in use"}"#),
            vec!["Name in use"]
        );
        assert!(messages(b"<html>").is_empty());
    }
}
