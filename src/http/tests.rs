#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap as AxHeaders, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response as AxResponse};
use axum::routing::{get, post};
use serde_json::json;

use super::*;
use crate::testkit::{builder, serve};

/// What the fake saw: arrival times and a call counter, plus the answers to give in order
/// (the last one repeats).
#[derive(Clone)]
struct Script {
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<tokio::time::Instant>>>,
    answers: Arc<Vec<Answer>>,
}

#[derive(Clone)]
enum Answer {
    Ok,
    Status(u16, Vec<(&'static str, String)>, String),
    Delay(Duration),
}

impl Script {
    fn new(answers: Vec<Answer>) -> Self {
        Script {
            calls: Default::default(),
            seen: Default::default(),
            answers: Arc::new(answers),
        }
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn scripted(State(s): State<Script>) -> AxResponse {
    let n = s.calls.fetch_add(1, Ordering::SeqCst);
    s.seen.lock().unwrap().push(tokio::time::Instant::now());
    let answer = s.answers[n.min(s.answers.len() - 1)].clone();
    match answer {
        Answer::Ok => (AxStatus::OK, axum::Json(json!({"ok": true, "n": n}))).into_response(),
        Answer::Status(code, headers, body) => {
            let mut h = AxHeaders::new();
            for (k, v) in headers {
                h.insert(k, v.parse().unwrap());
            }
            (AxStatus::from_u16(code).unwrap(), h, body).into_response()
        }
        Answer::Delay(d) => {
            tokio::time::sleep(d).await;
            (AxStatus::OK, axum::Json(json!({"late": true}))).into_response()
        }
    }
}

async fn fake(answers: Vec<Answer>) -> (Script, String) {
    let script = Script::new(answers);
    let app = Router::new()
        .route("/api/thing", get(scripted).post(scripted))
        .with_state(script.clone());
    (script, serve(app).await)
}

/// Paused clock: the waits pass in virtual time.
#[tokio::test(start_paused = true)]
async fn a_429_waits_exactly_retry_after_then_succeeds() {
    let (s, base) = fake(vec![
        Answer::Status(429, vec![("retry-after", "1".into())], "slow down".into()),
        Answer::Ok,
    ])
    .await;
    let client = builder(&base).build().unwrap();
    let resp = client.send(Request::get("/api/thing")).await.unwrap();
    assert_eq!(resp.json::<Value>().unwrap()["ok"], true);
    let seen = s.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[1] - seen[0] >= Duration::from_secs(1),
        "{:?}",
        seen[1] - seen[0]
    );
    let stats = client.stats();
    assert_eq!((stats.requests, stats.throttled, stats.retries), (2, 1, 1));
    assert!(stats.waited_ms >= 900, "{stats:?}");
}

#[tokio::test]
async fn a_429_is_retried_even_for_a_create_and_reset_headers_count() {
    let (s, base) = fake(vec![
        Answer::Status(429, vec![("ratelimit-reset", "0".into())], "".into()),
        Answer::Ok,
    ])
    .await;
    let client = builder(&base)
        .reset_header("ratelimit-reset")
        .build()
        .unwrap();
    client.send(Request::post("/api/thing")).await.unwrap();
    assert_eq!(s.calls(), 2);
}

#[tokio::test]
async fn a_wait_longer_than_the_cap_fails_with_a_clear_message() {
    let (s, base) = fake(vec![Answer::Status(
        429,
        vec![("retry-after", "3600".into())],
        "".into(),
    )])
    .await;
    let client = builder(&base).build().unwrap();
    let err = client.send(Request::get("/api/thing")).await.unwrap_err();
    assert_eq!(s.calls(), 1);
    let msg = err.to_string();
    assert!(msg.contains("asked to wait 3600s"), "{msg}");
    assert!(msg.contains("more than the 5s headcount waits"), "{msg}");
    assert!(msg.contains("GET /api/thing"), "{msg}");
}

#[tokio::test]
async fn a_vendor_throttle_answer_is_recognised_by_the_hook() {
    let body = json!({"error": {"code": 403, "message": "Rate Limit Exceeded",
        "errors": [{"reason": "rateLimitExceeded"}]}})
    .to_string();
    let (s, base) = fake(vec![Answer::Status(403, vec![], body), Answer::Ok]).await;
    let hook: ThrottleHook = Arc::new(|status, _, body| {
        status == StatusCode::FORBIDDEN
            && String::from_utf8_lossy(body).contains("rateLimitExceeded")
    });
    let client = builder(&base).throttle_hook(hook).build().unwrap();
    client.send(Request::get("/api/thing")).await.unwrap();
    assert_eq!(s.calls(), 2);
    assert_eq!(client.stats().throttled, 1);
}

#[tokio::test]
async fn a_500_is_retried_for_an_idempotent_request() {
    let (s, base) = fake(vec![Answer::Status(500, vec![], "oops".into()), Answer::Ok]).await;
    let client = builder(&base).build().unwrap();
    client.send(Request::get("/api/thing")).await.unwrap();
    assert_eq!(s.calls(), 2);
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn persistent_5xx_gives_up_after_the_attempts() {
    let (s, base) = fake(vec![Answer::Status(502, vec![], "bad gateway".into())]).await;
    let client = builder(&base).build().unwrap();
    let err = client.send(Request::get("/api/thing")).await.unwrap_err();
    assert_eq!(s.calls(), 4);
    let msg = err.to_string();
    assert!(msg.contains("502 Bad Gateway"), "{msg}");
    assert!(msg.contains("after 4 attempts"), "{msg}");
}

/// Paused clock: the waits pass in virtual time.
#[tokio::test(start_paused = true)]
async fn a_timeout_is_retried_for_an_idempotent_get() {
    let (s, base) = fake(vec![Answer::Delay(Duration::from_secs(3)), Answer::Ok]).await;
    let client = builder(&base)
        .timeout_duration(Duration::from_millis(300))
        .build()
        .unwrap();
    let resp = client.send(Request::get("/api/thing")).await.unwrap();
    assert_eq!(resp.json::<Value>().unwrap()["ok"], true);
    assert_eq!(s.calls(), 2);
}

/// Paused clock: the waits pass in virtual time.
#[tokio::test(start_paused = true)]
async fn a_create_is_never_retried_once_it_may_have_been_applied() {
    let (s, base) = fake(vec![Answer::Delay(Duration::from_secs(3)), Answer::Ok]).await;
    let client = builder(&base)
        .timeout_duration(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client.send(Request::post("/api/thing")).await.unwrap_err();
    assert!(err.is_ambiguous(), "{err}");
    assert!(err.to_string().contains("not retried blindly"), "{err}");
    assert_eq!(s.calls(), 1);

    let (s, base) = fake(vec![Answer::Status(500, vec![], "".into()), Answer::Ok]).await;
    let client = builder(&base).build().unwrap();
    let err = client.send(Request::post("/api/thing")).await.unwrap_err();
    assert!(err.is_ambiguous(), "{err}");
    assert_eq!(s.calls(), 1);
    assert_eq!(client.stats().ambiguous, 1);

    // A 503 that says when to come back was not processed: safe to resend.
    let (s, base) = fake(vec![
        Answer::Status(503, vec![("retry-after", "0".into())], "".into()),
        Answer::Ok,
    ])
    .await;
    let client = builder(&base).build().unwrap();
    client.send(Request::post("/api/thing")).await.unwrap();
    assert_eq!(s.calls(), 2);
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    // Bind then drop a listener to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = builder(&format!("http://127.0.0.1:{port}"))
        .build()
        .unwrap();
    let err = client.send(Request::post("/api/thing")).await.unwrap_err();
    match &err {
        HttpError::Transport { attempts, .. } => assert_eq!(*attempts, 4),
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains("check that `base_url` is right"),
        "{err}"
    );
}

#[tokio::test]
async fn status_errors_say_what_to_do() {
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": "401", "detail": "invalid token"})
    .to_string();
    let (_, base) = fake(vec![Answer::Status(401, vec![], body)]).await;
    let client = builder(&base)
        .auth(Auth::Query {
            param: "access_key".into(),
            value: SecretString::from("sekrit"),
        })
        .build()
        .unwrap();
    let err = client
        .send(Request::get("/api/thing").query("page", 2))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        msg,
        "GET /api/thing?page=2 failed: 401 Unauthorized: invalid token; check the token or credentials: they may be wrong, expired or for another tenant"
    );
    assert!(!msg.contains("sekrit"));
    let ce: crate::model::ConnectorError = err.into();
    assert!(matches!(ce, crate::model::ConnectorError::Auth { .. }));

    let (_, base) = fake(vec![Answer::Status(403, vec![], "{}".into())]).await;
    let err = builder(&base)
        .build()
        .unwrap()
        .send(Request::get("/api/thing"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lack permission"), "{err}");
}

#[tokio::test]
async fn credentials_reach_the_server() {
    async fn echo(headers: AxHeaders, Query(q): Query<Vec<(String, String)>>) -> axum::Json<Value> {
        axum::Json(json!({
            "auth": headers.get("authorization").map(|v| v.to_str().unwrap().to_string()),
            "query": q,
        }))
    }
    let base = serve(Router::new().route("/v2/echo", post(echo).get(echo))).await;
    let c = builder(&format!("{base}/v2/"))
        .auth(Auth::Bearer(SecretString::from("tok")))
        .build()
        .unwrap();
    let v: Value = c.send_json(Request::get("echo")).await.unwrap();
    assert_eq!(v["auth"], "Bearer tok");
    let c = builder(&format!("{base}/v2"))
        .auth(Auth::Query {
            param: "access_key".into(),
            value: SecretString::from("ak"),
        })
        .build()
        .unwrap();
    let v: Value = c
        .send_json(Request::get("/echo").query("page", 1))
        .await
        .unwrap();
    assert_eq!(v["query"], json!([["page", "1"], ["access_key", "ak"]]));
    let c = builder(&format!("{base}/v2"))
        .auth(Auth::Scheme {
            scheme: "token".into(),
            token: SecretString::from("1-14-abc"),
        })
        .build()
        .unwrap();
    let v: Value = c.send_json(Request::get("/echo")).await.unwrap();
    assert_eq!(v["auth"], "token 1-14-abc");
    assert_eq!(v["query"], json!([]));
}

#[tokio::test]
async fn pages_are_followed_by_page_number_and_by_link() {
    async fn pages(Query(q): Query<Vec<(String, String)>>) -> axum::Json<Value> {
        let page: u64 = q
            .iter()
            .find(|(k, _)| k == "page")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(1);
        let items: Vec<u64> = match page {
            1 => vec![1, 2],
            2 => vec![3, 4],
            3 => vec![5],
            _ => vec![],
        };
        let next = (page < 3).then(|| format!("/links?page={}", page + 1));
        axum::Json(json!({"items": items, "next": next}))
    }
    let base = serve(
        Router::new()
            .route("/pages", get(pages))
            .route("/links", get(pages)),
    )
    .await;
    let c = builder(&base).build().unwrap();
    let items: Vec<u64> = c
        .collect_pages(Request::get("/pages").query("page", 1), |req, resp| {
            let v: Value = resp.json()?;
            let items: Vec<u64> = serde_json::from_value(v["items"].clone()).unwrap();
            let page: u64 = req.query[0].1.parse().unwrap();
            let next = paging::next_by_page_number(req, "page", page, items.len(), 2);
            Ok(Page { items, next })
        })
        .await
        .unwrap();
    assert_eq!(items, vec![1, 2, 3, 4, 5]);
    let base_url = c.base_url().to_string();
    let items: Vec<u64> = c
        .collect_pages(Request::get("/links"), |req, resp| {
            let v: Value = resp.json()?;
            let items: Vec<u64> = serde_json::from_value(v["items"].clone()).unwrap();
            let link = v["next"]
                .as_str()
                .map(|l| format!("{}{}", base_url.trim_end_matches('/'), l));
            Ok(Page {
                items,
                next: paging::next_by_link(req, link.as_deref()),
            })
        })
        .await
        .unwrap();
    assert_eq!(items, vec![1, 2, 3, 4, 5]);
}

/// A server that ignores the page parameter answers page 1 again: an error naming the client,
/// never a short list or a loop, whatever paging style the connector uses.
#[tokio::test]
async fn a_repeated_page_is_an_error_naming_the_connector() {
    async fn stuck() -> axum::Json<Value> {
        axum::Json(json!({"items": [1, 2]}))
    }
    let base = serve(Router::new().route("/stuck", get(stuck))).await;
    let c = HttpClient::builder("mojo target `desk`", &base)
        .unlimited()
        .build()
        .unwrap();
    let err = c
        .collect_pages(Request::get("/stuck").query("page", 1), |req, resp| {
            let v: Value = resp.json()?;
            let items: Vec<u64> = serde_json::from_value(v["items"].clone()).unwrap();
            let page: u64 = req.query[0].1.parse().unwrap();
            let next = paging::next_by_page_number(req, "page", page, items.len(), 2);
            Ok(Page { items, next })
        })
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Inconsistent { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("mojo target `desk`: GET /stuck?page=2"),
        "{text}"
    );
    assert!(
        text.contains("page 2 holds the same 2 item(s) as page 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_not_followed() {
    let c = builder("http://127.0.0.1:9/api").build().unwrap();
    let req =
        paging::next_by_link(&Request::get("/x"), Some("https://evil.example/steal")).unwrap();
    let err = c.url_of(&req).unwrap_err();
    assert!(err.to_string().contains("another origin"), "{err}");
    let same = Request::get("http://127.0.0.1:9/api/users?cursor=abc");
    assert_eq!(
        c.url_of(&same).unwrap().as_str(),
        "http://127.0.0.1:9/api/users?cursor=abc"
    );
    assert_eq!(
        c.url_of(&Request::get("Users").query("filter", "userName eq \"a b\""))
            .unwrap()
            .as_str(),
        "http://127.0.0.1:9/api/Users?filter=userName+eq+%22a+b%22"
    );
}

#[test]
fn the_rate_limit_allows_a_burst_then_spaces_requests() {
    let c = HttpClient::builder("t", "http://127.0.0.1:9")
        .rate_limit(RateLimit {
            count: 5,
            per: Duration::from_secs(1),
        })
        .build()
        .unwrap();
    let limiter = c.inner.limiter.as_ref().unwrap();
    for _ in 0..5 {
        assert!(limiter.check().is_ok());
    }
    let Err(not_until) = limiter.check() else {
        panic!("a sixth request in the same instant must wait")
    };
    let wait = not_until.wait_time_from(governor::clock::Clock::now(
        &governor::clock::DefaultClock::default(),
    ));
    assert!(
        wait <= Duration::from_millis(200) && wait > Duration::ZERO,
        "{wait:?}"
    );

    let c = HttpClient::builder("t", "http://127.0.0.1:9")
        .rate_limit(RateLimit {
            count: 2,
            per: Duration::from_secs(60),
        })
        .build()
        .unwrap();
    let limiter = c.inner.limiter.as_ref().unwrap();
    assert!(limiter.check().is_ok() && limiter.check().is_ok());
    assert!(limiter.check().is_err());

    assert!(HttpClient::builder("t", "not a url").build().is_err());
}

#[test]
fn retry_after_takes_seconds_or_an_http_date() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37 UTC
    assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_reset("30", now), Some(Duration::from_secs(30)));
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    assert_eq!(
        parse_reset("1700000020", later),
        Some(Duration::from_secs(20))
    );
    assert_eq!(parse_reset("-1", now), None);
}

#[test]
fn vendor_messages_are_found_in_common_error_bodies() {
    let scim = br#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness","detail":"userName already exists"}"#;
    assert_eq!(
        vendor_message(scim).unwrap(),
        "uniqueness: userName already exists"
    );
    assert_eq!(
        vendor_message(br#"{"error":{"code":403,"message":"Not Authorized"}}"#).unwrap(),
        "Not Authorized"
    );
    assert_eq!(
        vendor_message(br#"{"error":"RecordInvalid","description":"Record validation errors","details":{"email":[{"description":"taken"}]}}"#).unwrap(),
        "Record validation errors: {\"email\":[{\"description\":\"taken\"}]}"
    );
    assert_eq!(vendor_message(b"<html>"), None);
}

#[test]
fn stats_display_and_debug_hide_secrets() {
    let s = HttpStats {
        requests: 10,
        retries: 2,
        throttled: 1,
        waited_ms: 1500,
        ambiguous: 0,
    };
    assert_eq!(
        s.to_string(),
        "10 requests, 2 retries, 1 throttled, waited 1.5s, 0 ambiguous"
    );
    let a = Auth::Bearer(SecretString::from("tok"));
    assert!(!format!("{a:?}").contains("tok"));
    let a = Auth::Scheme {
        scheme: "token".into(),
        token: SecretString::from("s3cr3t"),
    };
    assert_eq!(format!("{a:?}"), "Scheme(token [redacted])");
    let r = Request::post("/x").json(json!({"password": "p"}));
    assert!(!format!("{r:?}").contains("\"p\""));
}

/// A server that echoes the `Authorization` header in its 400 body (raw, base64, URL-encoded)
/// must not get the credential into the error or any log line.
#[tokio::test]
async fn a_vendor_echoing_the_credential_is_scrubbed_from_errors_and_logs() {
    use crate::testkit::{Fault, Match, serve_with_faults};
    let app = Router::new().route("/v2/Users", post(|| async { AxStatus::CREATED }));
    let served = serve_with_faults(app).await;
    served
        .faults
        .on(Match::post("/Users"))
        .always()
        .inject(Fault::EchoAuthorization { status: 400 });
    let (logs, _guard) = crate::testkit::capture::logs();
    let token = "tok/en+s3cr3t value";
    for auth in [
        Auth::Bearer(SecretString::from(token)),
        Auth::Basic {
            user: "agent@example.com/token".to_string(),
            password: SecretString::from(token),
        },
        Auth::Scheme {
            scheme: "token".to_string(),
            token: SecretString::from(token),
        },
    ] {
        let client = builder(&format!("{}/v2", served.origin))
            .auth(auth)
            .build()
            .unwrap();
        let err = client
            .send(Request::post("/Users").json(json!({"userName": "a"})))
            .await
            .unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains("[redacted]"), "{shown}");
        let cx: crate::model::ConnectorError = err.into();
        let logged = logs.text();
        for text in [shown.as_str(), &cx.to_string(), logged.as_str()] {
            for leak in [
                "s3cr3t",
                "czNjcjN0",
                "dG9rL2VuK3MzY3IzdCB2YWx1ZQ",
                "YWdlbnRA",
            ] {
                assert!(!text.contains(leak), "{leak} in {text}");
            }
        }
    }
    assert_eq!(served.log.count(), 3, "a 400 is not retried");
}

#[test]
fn a_base_url_with_credentials_or_a_query_is_refused_without_echoing_them() {
    let err = HttpClient::builder("t", "https://agent:hunter22@scim.example/v2")
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("carries credentials"), "{err}");
    assert!(
        !err.contains("hunter22") && !err.contains("agent:"),
        "{err}"
    );
    let err = HttpClient::builder("t", "https://agent:hun ter22@scim.example/v2")
        .build()
        .unwrap_err()
        .to_string();
    assert!(!err.contains("hun ter22"), "{err}");
    for base in [
        "https://scim.example/v2?access_key=k3y",
        "https://scim.example/v2#x",
    ] {
        let err = HttpClient::builder("t", base)
            .build()
            .unwrap_err()
            .to_string();
        assert!(err.contains("query string or fragment"), "{err}");
        assert!(!err.contains("k3y"), "{err}");
    }
    assert!(
        HttpClient::builder("t", "https://scim.example/v2/")
            .build()
            .is_ok()
    );
}

/// Ids in paths: a space is `%20` (form encoding's `+` would be read as a plus sign), a slash
/// cannot split the path, unreserved characters stay.
#[test]
fn path_segments_percent_encode_everything_but_unreserved() {
    assert_eq!(super::path_segment("Jane Doe/x+y"), "Jane%20Doe%2Fx%2By");
    assert_eq!(super::path_segment("a-b.c_d~9"), "a-b.c_d~9");
    assert_eq!(super::path_segment("é"), "%C3%A9");
}
