//! The Google emulator answers as apis.md §3 says, so that the connector's tests mean
//! something: the token endpoint checks the JWT's signature and claims, `users.list` and
//! `members.list` check their parameters, and errors have Google's shape.

use headcount::testkit::google::{GoogleEmulator, TEST_KEY_PEM};
use serde_json::{Value, json};

async fn get(emu: &GoogleEmulator, token: &str, path_and_query: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path_and_query}", emu.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post_token(emu: &GoogleEmulator, assertion: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// A JWT signed with `pem` carrying `claims`, as a service-account key would sign it.
fn jwt(pem: &str, claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let block = pem::parse(pem).unwrap();
    let key = ring::signature::RsaKeyPair::from_pkcs8(block.contents()).unwrap();
    let mut text = format!(
        "{}.{}",
        b64.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string()),
        b64.encode(claims.to_string())
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        text.as_bytes(),
        &mut sig,
    )
    .unwrap();
    text.push('.');
    text.push_str(&b64.encode(sig));
    text
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(emu: &GoogleEmulator) -> Value {
    json!({"iss": headcount::testkit::google::CLIENT_EMAIL, "sub": headcount::testkit::google::ADMIN,
        "aud": emu.token_url(), "iat": now(), "exp": now() + 3600,
        "scope": "https://www.googleapis.com/auth/admin.directory.user.readonly"})
}

#[tokio::test]
async fn the_token_endpoint_checks_signature_and_claims() {
    let emu = GoogleEmulator::start().await;
    let (status, body) = post_token(&emu, &jwt(TEST_KEY_PEM, &claims(&emu))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().unwrap().starts_with("ya29."));
    assert_eq!(body["expires_in"], 3599);

    let mut bad = jwt(TEST_KEY_PEM, &claims(&emu));
    bad.push('A');
    let (status, body) = post_token(&emu, &bad).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(body["error_description"], "Invalid JWT Signature.");

    for (key, value, error) in [
        ("exp", json!(now() + 3700), "invalid_grant"),
        (
            "aud",
            json!("https://oauth2.googleapis.com/token"),
            "invalid_grant",
        ),
        ("sub", json!("nobody@example.com"), "invalid_grant"),
        ("scope", json!("a,b"), "invalid_scope"),
        (
            "iss",
            json!("other@x.iam.gserviceaccount.com"),
            "invalid_client",
        ),
    ] {
        let mut c = claims(&emu);
        c[key] = value;
        let (_, body) = post_token(&emu, &jwt(TEST_KEY_PEM, &c)).await;
        assert_eq!(body["error"], error, "{key}: {body}");
    }
    // Not granted for delegation at all.
    emu.set_grant(headcount::testkit::google::CLIENT_ID, None);
    let (status, body) = post_token(&emu, &jwt(TEST_KEY_PEM, &claims(&emu))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized_client"))
    );
}

#[tokio::test]
async fn users_list_checks_its_parameters_and_answers_in_googles_shape() {
    let emu = GoogleEmulator::start().await;
    emu.insert_user(json!({"primaryEmail": "ann@example.com", "customSchemas": {"HR": {"x": 1}}}));
    let (_, body) = post_token(&emu, &jwt(TEST_KEY_PEM, &claims(&emu))).await;
    let token = body["access_token"].as_str().unwrap().to_string();
    let users = "/admin/directory/v1/users";

    let (status, body) = get(&emu, &token, users).await;
    assert_eq!(status, 400, "customer or domain is required");
    assert_eq!(body["error"]["errors"][0]["reason"], "badRequest");
    let (status, body) = get(
        &emu,
        &token,
        &format!("{users}?customer=my_customer&maxResults=501"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[1, 500]")
    );
    let (status, _) = get(
        &emu,
        &token,
        &format!("{users}?customer=my_customer&query=foo"),
    )
    .await;
    assert_eq!(status, 400, "an unknown query clause");
    let (status, _) = get(
        &emu,
        &token,
        &format!("{users}?customer=my_customer&customFieldMask=HR"),
    )
    .await;
    assert_eq!(status, 400, "customFieldMask needs projection=custom");

    let (status, body) = get(&emu, &token, &format!("{users}?customer=my_customer")).await;
    assert_eq!(status, 200);
    assert_eq!(body["kind"], "admin#directory#users");
    assert!(
        body["users"][0].get("customSchemas").is_none(),
        "basic projection"
    );
    let (_, body) = get(
        &emu,
        &token,
        &format!("{users}?customer=my_customer&projection=full"),
    )
    .await;
    assert_eq!(body["users"][0]["customSchemas"]["HR"]["x"], 1);
    let (_, body) = get(&emu, &token, &format!("{users}?domain=other.org")).await;
    assert!(
        body.get("users").is_none(),
        "an empty list has no `users`: {body}"
    );

    let (status, body) = get(&emu, "wrong", &format!("{users}?customer=my_customer")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["errors"][0]["reason"], "required");
    // The token has no group scope.
    let (status, body) = get(
        &emu,
        &token,
        "/admin/directory/v1/groups/g@example.com/members",
    )
    .await;
    assert_eq!(status, 403, "{body}");
}
