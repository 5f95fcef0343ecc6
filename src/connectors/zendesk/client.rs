//! The HTTP client of one Zendesk account (shared by its source and target), Zendesk's error
//! bodies as one human message, and the cursor paging every list uses.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;

use crate::http::{Auth, HttpClient, HttpClientBuilder, HttpError, Page, Request, Response};
use crate::model::{HttpSettings, RateLimit};

/// 200 requests a minute: the account-wide limit of Zendesk's Team plans, the smallest of the
/// Suite plans (Professional 400, Enterprise 700, High Volume add-on 2500: raise `rate_limit`).
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    count: 200,
    per: Duration::from_secs(60),
};

/// Items asked for per page (`page[size]`): Zendesk's maximum for cursor paging.
pub const PAGE_SIZE: usize = 100;

/// `https://SUBDOMAIN.zendesk.com`, unless `base_url` overrides it.
pub(super) fn base_url(subdomain: &str, base_url: Option<&str>) -> String {
    match base_url {
        Some(b) => b.trim().to_string(),
        None => format!("https://{}.zendesk.com", subdomain.trim()),
    }
}

/// The HTTP client of a Zendesk account, to build: Basic auth as `{email}/token` with the API
/// token as password, Zendesk's error bodies as messages, the account's rate limit.
pub fn client(
    name: &str,
    base_url: &str,
    email: &str,
    api_token: SecretString,
    settings: HttpSettings,
) -> Result<HttpClientBuilder, HttpError> {
    Ok(HttpClient::builder(name, base_url)
        .auth(Auth::Basic {
            user: format!("{}/token", email.trim()),
            password: api_token,
        })
        .message_hook(Arc::new(|body: &[u8]| zendesk_message(body)))
        // Seconds until the account's window resets, when a 429 has no Retry-After.
        .reset_header("ratelimit-reset")
        .rate_limit(settings.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT))
        .timeout(settings.timeout))
}

/// The human message of Zendesk's error bodies: `{"error": "RecordInvalid", "description":
/// "...", "details": {"email": [{"description": "...", "error": "..."}]}}`, `{"error":
/// "RecordNotFound", "description": "Not found"}`, `{"error": "Couldn't authenticate you"}` and
/// `{"error": {"title": "...", "message": "..."}}`.
pub fn zendesk_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let str_of = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mut parts = Vec::new();
    match v.get("error") {
        Some(Value::Object(e)) => {
            parts.extend(str_of(e.get("title")));
            parts.extend(str_of(e.get("message")));
        }
        other => parts.extend(str_of(other)),
    }
    parts.extend(str_of(v.get("description")));
    if let Some(details) = details_text(v.get("details")) {
        parts.push(details);
    }
    (!parts.is_empty()).then(|| parts.join(": "))
}

/// `details` of an error body or a failed job item: a text, or `{field: [{description}]}`.
pub(super) fn details_text(details: Option<&Value>) -> Option<String> {
    match details? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Object(fields) => {
            let mut out = Vec::new();
            for (field, errors) in fields {
                let texts: Vec<String> = match errors {
                    Value::Array(items) => items
                        .iter()
                        .filter_map(|e| {
                            e.get("description")
                                .and_then(Value::as_str)
                                .or_else(|| e.as_str())
                                .map(str::to_string)
                        })
                        .collect(),
                    Value::String(s) => vec![s.clone()],
                    _ => vec![],
                };
                if texts.is_empty() {
                    out.push(field.clone());
                } else {
                    out.push(format!("{field}: {}", texts.join("; ")));
                }
            }
            (!out.is_empty()).then(|| out.join("; "))
        }
        _ => None,
    }
}

/// Every page of a cursor-paged list (`page[size]`, then `page[after]` from
/// `meta.after_cursor` while `meta.has_more`), items under `key`. A page that says there is
/// more but gives no cursor, no `links.next`, a `links.next` with another cursor, or no items
/// is a list that contradicts itself, never a short list.
pub(super) async fn list_all(
    client: &HttpClient,
    first: Request,
    key: &'static str,
) -> Result<Vec<Value>, HttpError> {
    let first = first.query("page[size]", PAGE_SIZE);
    client
        .collect_pages(first, |req, resp| page_of(client, req, resp, key))
        .await
}

/// One page of a cursor-paged list, at most its first page (`validate --online`).
pub(super) async fn first_page(
    client: &HttpClient,
    first: Request,
    key: &'static str,
) -> Result<Vec<Value>, HttpError> {
    let req = first.query("page[size]", PAGE_SIZE);
    let resp = client.send(req.clone()).await?;
    Ok(page_of(client, &req, resp, key)?.items)
}

fn page_of(
    client: &HttpClient,
    req: &Request,
    resp: Response,
    key: &'static str,
) -> Result<Page<Value>, HttpError> {
    let what = resp.what.clone();
    let decode = |cause: String| HttpError::Decode {
        what: what.clone(),
        cause,
    };
    let body: Value = resp.json()?;
    let items = match body.get(key) {
        Some(Value::Array(items)) => items.clone(),
        _ => return Err(decode(format!("no `{key}` list in the answer"))),
    };
    let Some(meta) = body.get("meta").filter(|m| m.is_object()) else {
        return Err(decode(
            "no `meta` in the answer (expected cursor paging: meta.has_more, meta.after_cursor)"
                .to_string(),
        ));
    };
    let has_more = match meta.get("has_more") {
        Some(Value::Bool(b)) => *b,
        _ => return Err(decode("`meta.has_more` is not true or false".to_string())),
    };
    if !has_more {
        return Ok(Page { items, next: None });
    }
    let inconsistent = |cause: &str| client.inconsistent(what.clone(), cause.to_string());
    let cursor = meta
        .get("after_cursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| inconsistent("`meta.has_more` is true but there is no `after_cursor`"))?;
    if items.is_empty() {
        return Err(inconsistent(
            "`meta.has_more` is true on a page without items",
        ));
    }
    let next_link = body
        .pointer("/links/next")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| inconsistent("`meta.has_more` is true but `links.next` is empty"))?;
    let link_cursor = url::Url::parse(next_link).ok().and_then(|u| {
        u.query_pairs()
            .find(|(k, _)| k == "page[after]")
            .map(|(_, v)| v.into_owned())
    });
    if link_cursor.as_deref() != Some(cursor) {
        return Err(inconsistent(
            "`links.next` does not carry the `meta.after_cursor` of the same page",
        ));
    }
    Ok(Page {
        items,
        next: Some(req.clone().query("page[after]", cursor)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_bodies_read_as_one_message() {
        let invalid = br#"{"error":"RecordInvalid","description":"Record validation errors","details":{"email":[{"description":"Email: x is not properly formatted","error":"InvalidFormat"}]}}"#;
        assert_eq!(
            zendesk_message(invalid).as_deref(),
            Some(
                "RecordInvalid: Record validation errors: email: Email: x is not properly formatted"
            )
        );
        assert_eq!(
            zendesk_message(br#"{"error":"RecordNotFound","description":"Not found"}"#).as_deref(),
            Some("RecordNotFound: Not found")
        );
        assert_eq!(
            zendesk_message(br#"{"error":"Couldn't authenticate you"}"#).as_deref(),
            Some("Couldn't authenticate you")
        );
        assert_eq!(
            zendesk_message(br#"{"error":{"title":"Forbidden","message":"No access"}}"#).as_deref(),
            Some("Forbidden: No access")
        );
        assert_eq!(zendesk_message(b"<html>502</html>"), None);
        assert_eq!(zendesk_message(br#"{"other":1}"#), None);
    }

    fn page(body: Value) -> Result<Page<Value>, HttpError> {
        let client = HttpClient::builder("zendesk target `t`", "http://127.0.0.1:9")
            .build()
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let resp = Response {
            status: reqwest::StatusCode::OK,
            headers: Default::default(),
            body: body.to_string().into_bytes(),
            what: "GET /api/v2/users?page[size]=100".to_string(),
        };
        page_of(&client, &Request::get("api/v2/users"), resp, "users")
    }

    fn error_of(body: Value) -> String {
        match page(body) {
            Ok(p) => panic!("taken as a page of {} item(s)", p.items.len()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_cursor_page_leads_to_the_next_one_by_its_after_cursor() {
        let p = page(json!({"users": [{"id": 1}], "meta": {"has_more": true, "after_cursor": "c1"},
            "links": {"next": "https://x.zendesk.com/api/v2/users.json?page%5Bafter%5D=c1&page%5Bsize%5D=100"}}))
        .unwrap_or_else(|e| panic!("{e}"));
        let next = p.next.unwrap_or_else(|| panic!("no next page"));
        assert_eq!(next.query, [("page[after]".to_string(), "c1".to_string())]);
        let last = page(json!({"users": [], "meta": {"has_more": false}, "links": {"next": null}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(last.next.is_none());
    }

    #[test]
    fn a_cursor_page_that_contradicts_itself_is_an_error() {
        let more = |meta: Value, next: Value| json!({"users": [{"id": 1}], "meta": meta, "links": {"next": next}});
        let link = json!("https://x.zendesk.com/api/v2/users.json?page%5Bafter%5D=c1");
        for (body, cause) in [
            (
                more(json!({"has_more": true}), link.clone()),
                "no `after_cursor`",
            ),
            (
                more(json!({"has_more": true, "after_cursor": "c1"}), Value::Null),
                "`links.next` is empty",
            ),
            (
                more(
                    json!({"has_more": true, "after_cursor": "c2"}),
                    link.clone(),
                ),
                "does not carry",
            ),
            (
                json!({"users": [], "meta": {"has_more": true, "after_cursor": "c1"}, "links": {"next": link}}),
                "without items",
            ),
        ] {
            let msg = error_of(body);
            assert!(
                msg.contains("contradicts itself") && msg.contains(cause),
                "{msg}"
            );
            assert!(msg.contains("zendesk target `t`"), "{msg}");
        }
        for (body, cause) in [
            (
                json!({"users": "x", "meta": {"has_more": false}}),
                "no `users` list",
            ),
            (json!({"users": []}), "no `meta`"),
            (
                json!({"users": [], "meta": {"has_more": "yes"}}),
                "`meta.has_more`",
            ),
        ] {
            let msg = error_of(body);
            assert!(
                msg.contains("GET /api/v2/users") && msg.contains(cause),
                "{msg}"
            );
        }
    }

    #[test]
    fn the_base_url_defaults_to_the_subdomain() {
        assert_eq!(base_url("acme", None), "https://acme.zendesk.com");
        assert_eq!(
            base_url("acme", Some("http://127.0.0.1:9")),
            "http://127.0.0.1:9"
        );
    }
}
