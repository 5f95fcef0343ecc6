//! What an admin reads when Google refuses (SPEC §13): each token-endpoint refusal and each
//! Directory API reason names what to change and where; quota answers are retried with
//! backoff (and Retry-After), the daily quota is not.

use std::time::Duration;

use headcount::connectors::Source;
use headcount::connectors::google::{DWD_CONSOLE_PATH, Listing};
use headcount::testkit::google::{ADMIN, CLIENT_ID, GoogleEmulator, throttle};
use headcount::testkit::{Fault, Match};
use serde_json::json;

async fn emulator() -> GoogleEmulator {
    let emu = GoogleEmulator::start().await;
    emu.insert_user(json!({"primaryEmail": "ann@example.com", "name": {"givenName": "Ann", "familyName": "Lee"}}));
    emu.set_group("staff@example.com", &[("ann@example.com", "USER")]);
    emu
}

/// The error of one read: its kind and text.
async fn read_err(emu: &GoogleEmulator, listing: Listing) -> (&'static str, String) {
    let err = emu.source(listing).read().await.unwrap_err();
    (err.kind(), err.to_string())
}

fn token_refusal(status: u16, error: &str, description: &str) -> Fault {
    Fault::Answer {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: json!({"error": error, "error_description": description}).to_string(),
    }
}

fn with_groups() -> Listing {
    Listing {
        groups: vec!["staff@example.com".into()],
        ..Listing::default()
    }
}

#[tokio::test]
async fn unauthorized_client_says_where_to_grant_delegation_with_the_client_id_and_scopes() {
    let emu = emulator().await;
    emu.set_grant(CLIENT_ID, None);
    let (kind, text) = read_err(&emu, with_groups()).await;
    assert_eq!(kind, "auth");
    assert!(text.contains("unauthorized_client"), "{text}");
    assert!(text.contains(DWD_CONSOLE_PATH), "{text}");
    assert!(
        text.contains(
            "Security → Access and data control → API controls → Manage Domain Wide Delegation"
        ),
        "{text}"
    );
    assert!(text.contains(&format!("client ID {CLIENT_ID}")), "{text}");
    assert!(
        text.contains("https://www.googleapis.com/auth/admin.directory.user.readonly,https://www.googleapis.com/auth/admin.directory.group.member.readonly"),
        "{text}"
    );
    // Nothing was listed without a token.
    assert!(emu.log().method("GET").is_empty());
}

#[tokio::test]
async fn a_missing_scope_is_access_denied_naming_the_scopes_to_add() {
    let emu = emulator().await;
    let only_users =
        vec!["https://www.googleapis.com/auth/admin.directory.user.readonly".to_string()];
    emu.set_grant(CLIENT_ID, Some(&only_users));
    let (kind, text) = read_err(&emu, with_groups()).await;
    assert_eq!(kind, "permission");
    assert!(text.contains("access_denied"), "{text}");
    assert!(
        text.contains("admin.directory.group.member.readonly"),
        "{text}"
    );
    assert!(text.contains(DWD_CONSOLE_PATH), "{text}");
}

#[tokio::test]
async fn admin_policy_enforced_says_to_trust_the_app() {
    let emu = emulator().await;
    emu.faults()
        .on(Match::post("/token"))
        .always()
        .inject(token_refusal(
            400,
            "admin_policy_enforced",
            "Access to the requested scopes is blocked by your administrator.",
        ));
    let (kind, text) = read_err(&emu, Listing::default()).await;
    assert_eq!(kind, "permission");
    assert!(text.contains("admin_policy_enforced"), "{text}");
    assert!(text.contains("Trusted"), "{text}");
    assert!(text.contains(CLIENT_ID), "{text}");
}

#[tokio::test]
async fn invalid_grant_tells_a_missing_subject_a_bad_key_and_a_wrong_clock_apart() {
    let emu = emulator().await;
    emu.remove_admin();
    let (kind, text) = read_err(&emu, Listing::default()).await;
    assert_eq!(kind, "auth");
    assert!(text.contains("invalid_grant"), "{text}");
    assert!(
        text.contains(&format!("The subject {ADMIN} does not exist in Workspace")),
        "{text}"
    );
    assert!(text.contains("`credentials.subject`"), "{text}");

    for (description, expected) in [
        ("Invalid JWT Signature.", "Create a new JSON key"),
        (
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
            "clock is off",
        ),
    ] {
        let emu = emulator().await;
        emu.faults()
            .on(Match::post("/token"))
            .always()
            .inject(token_refusal(400, "invalid_grant", description));
        let (_, text) = read_err(&emu, Listing::default()).await;
        assert!(text.contains(expected), "{text}");
    }
}

#[tokio::test]
async fn api_not_enabled_names_the_admin_sdk_api_and_the_project() {
    let emu = emulator().await;
    emu.set_api_error(Some((
        403,
        "accessNotConfigured",
        "Access Not Configured. Admin SDK API has not been used in project 123456 before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/admin.googleapis.com/overview?project=123456 then retry.",
    )));
    let (kind, text) = read_err(&emu, Listing::default()).await;
    assert_eq!(kind, "permission");
    assert!(
        text.contains("the Admin SDK API is not enabled in the Google Cloud project 123456"),
        "{text}"
    );
    assert!(text.contains("GET /admin/directory/v1/users"), "{text}");
    // Not retried: it will not enable itself.
    assert_eq!(emu.log().method("GET").len(), 1);
}

#[tokio::test]
async fn api_access_disabled_for_the_domain_is_explained() {
    let emu = emulator().await;
    emu.set_api_error(Some((
        403,
        "domainCannotUseApis",
        "Domain cannot use apis.",
    )));
    let (kind, text) = read_err(&emu, Listing::default()).await;
    assert_eq!(kind, "permission");
    assert!(
        text.contains("API access is disabled for this Workspace account"),
        "{text}"
    );
    assert!(text.contains("API controls"), "{text}");
}

#[tokio::test]
async fn a_subject_who_cannot_read_the_directory_is_named() {
    let emu = emulator().await;
    emu.set_api_error(Some((
        403,
        "forbidden",
        "Not Authorized to access this resource/api",
    )));
    let (kind, text) = read_err(&emu, with_groups()).await;
    assert_eq!(kind, "permission");
    assert!(
        text.contains(&format!(
            "the impersonated admin {ADMIN} cannot read the directory"
        )),
        "{text}"
    );
    assert!(
        text.contains("Not Authorized to access this resource/api"),
        "{text}"
    );
    assert!(text.contains("Users → Read"), "{text}");
}

/// `403 userRateLimitExceeded`, `403 quotaExceeded` and `429 rateLimitExceeded` are waited out
/// with backoff and the read completes; exactly one more request per throttle answer.
#[tokio::test]
async fn quota_answers_are_retried_with_backoff() {
    for (status, reason) in [
        (403, "userRateLimitExceeded"),
        (403, "quotaExceeded"),
        (429, "rateLimitExceeded"),
    ] {
        let emu = emulator().await;
        emu.faults()
            .on(Match::get("/users"))
            .first(2)
            .inject(throttle(status, reason, None));
        let records = emu.source(Listing::default()).read().await.unwrap();
        assert_eq!(records.len(), 1, "{reason}");
        assert_eq!(emu.log().method("GET").len(), 3, "{reason}");
    }
}

/// A `Retry-After` on a Google throttle answer is honoured (paused clock: no real wait).
#[tokio::test(start_paused = true)]
async fn retry_after_on_a_403_quota_answer_is_honoured() {
    let emu = emulator().await;
    emu.faults()
        .on(Match::get("/users"))
        .inject(throttle(403, "userRateLimitExceeded", Some(3)));
    emu.source(Listing::default()).read().await.unwrap();
    let gets = emu.log().method("GET");
    assert_eq!(gets.len(), 2);
    assert!(gets[1].at - gets[0].at >= Duration::from_secs(3));
}

/// The daily quota does not come back within a run: one request, a throttle error saying when.
#[tokio::test]
async fn the_daily_limit_is_not_retried() {
    let emu = emulator().await;
    emu.set_api_error(Some((403, "dailyLimitExceeded", "Daily Limit Exceeded")));
    let (kind, text) = read_err(&emu, Listing::default()).await;
    assert_eq!(kind, "throttled");
    assert!(text.contains("daily Directory API quota"), "{text}");
    assert_eq!(emu.log().method("GET").len(), 1);
}

/// Bad vendor data never panics: a user list whose `users` is not a list is an error naming
/// the request and what was expected.
#[tokio::test]
async fn unexpected_json_names_the_request_and_the_expected_shape() {
    let emu = emulator().await;
    emu.faults()
        .on(Match::get("/users"))
        .always()
        .inject(Fault::Answer {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"kind": "admin#directory#users", "users": {"a": 1}}"#.into(),
        });
    let (kind, text) = read_err(&emu, Listing::default()).await;
    assert_eq!(kind, "bad_data");
    assert!(text.contains("GET /admin/directory/v1/users"), "{text}");
    assert!(text.contains("`users` is a object"), "{text}");
}

/// A `200` that is not JSON (a proxy's login page) is an error naming the request and the
/// answer Google would have given, without the page itself.
#[tokio::test]
async fn a_page_that_is_not_json_is_an_error_not_an_empty_directory() {
    let emu = emulator().await;
    emu.faults()
        .on(Match::get("/members"))
        .always()
        .inject(Fault::Answer {
            status: 200,
            headers: vec![("content-type".into(), "text/html".into())],
            body: "<html><body>Sign in to the proxy</body></html>".into(),
        });
    let (kind, text) = read_err(&emu, with_groups()).await;
    assert_eq!(kind, "bad_data");
    assert!(
        text.contains("GET /admin/directory/v1/groups/staff@example.com/members"),
        "{text}"
    );
    assert!(
        text.contains("expected a Directory API list {\"kind\": \"admin#directory#members\""),
        "{text}"
    );
    assert!(!text.contains("<html"), "{text}");
}
