//! Webhook notifications: Slack-compatible JSON (`{"text": "..."}`) posted through the
//! project's HTTP layer (timeouts, retries, Retry-After). The URL is a secret (whoever holds a
//! Slack webhook URL can post to the channel): it is registered with the run's scrubber and
//! never appears in a message or a log.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::conditions::{Condition, Notice};
use super::round::RoundReport;
use crate::http::{HttpClient, Request};
use crate::model::{Scrubber, SecretRef};

/// A notification could not be sent, or the webhook could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "notifications.webhook.url ({reference}): {cause}; set it to the webhook URL your chat tool gave you"
    )]
    Setup { reference: String, cause: String },
    #[error(
        "the webhook notification could not be sent: {0}; check the webhook URL and that the chat tool accepts it"
    )]
    Send(String),
}

/// A Slack-compatible webhook.
pub struct Notifier {
    client: HttpClient,
    url: String,
    scrubber: Scrubber,
}

impl Notifier {
    /// Resolves the URL reference (relative files against `base_dir`) and builds its client.
    pub fn new(
        url: &SecretRef,
        base_dir: &std::path::Path,
        scrubber: &Scrubber,
    ) -> Result<Notifier, NotifyError> {
        let setup = |cause: String| NotifyError::Setup {
            reference: url.describe(),
            cause,
        };
        let secret = url.resolve(base_dir).map_err(|e| setup(e.to_string()))?;
        let full = secret.expose_secret().trim().to_string();
        let parsed = url::Url::parse(&full).map_err(|_| setup("not a URL".to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(setup("not an http(s) URL with a host".to_string()));
        }
        // The HTTP layer shows the path of a failed request: the path is the secret part.
        scrubber.register(&full);
        scrubber.register(parsed.as_str());
        let path = &parsed[url::Position::BeforePath..];
        if path.len() > 1 {
            scrubber.register(path);
        }
        let origin = parsed.origin().ascii_serialization();
        let client = HttpClient::builder("webhook", origin)
            .scrubber(scrubber.clone())
            .unlimited()
            .timeout_duration(Duration::from_secs(10))
            .build()
            .map_err(|e| setup(scrubber.scrub(&e.to_string())))?;
        Ok(Notifier {
            client,
            url: full,
            scrubber: scrubber.clone(),
        })
    }

    /// Posts `{"text": text}`. A duplicate is better than a lost alert, so it is resent like
    /// an idempotent request.
    pub async fn send(&self, text: &str) -> Result<(), NotifyError> {
        let text = self.scrubber.scrub(text);
        let req = Request::post(self.url.clone())
            .json(serde_json::json!({ "text": text }))
            .idempotent(true);
        self.client
            .send(req)
            .await
            .map(|_| ())
            .map_err(|e| NotifyError::Send(self.scrubber.scrub(&e.to_string())))
    }
}

/// The longest text of one notification: chat tools cut or refuse longer ones.
const MAX_TEXT: usize = 3000;

/// The message of a notice. `config` names the config file, so that a channel fed by several
/// deployments says which one speaks.
pub fn message(notice: &Notice, config: &str) -> String {
    let text = match notice {
        Notice::Raised(_, description) => format!("headcount ({config}): {description}"),
        Notice::Resolved(c) => format!("headcount ({config}): resolved: {}", resolved(c)),
    };
    if text.chars().count() > MAX_TEXT {
        let cut: String = text.chars().take(MAX_TEXT).collect();
        format!("{cut}… (cut; see the logs)")
    } else {
        text
    }
}

fn resolved(c: &Condition) -> String {
    match c {
        Condition::RoundFailed => "the last round succeeded".to_string(),
        Condition::GuardBlocked { sync } => format!(
            "sync `{sync}` is no longer stopped by the mass-removal guard and is applied again"
        ),
        Condition::Drift => "no drift".to_string(),
    }
}

/// The conditions a round leaves, each with what an operator reads.
pub fn conditions(r: &RoundReport) -> std::collections::BTreeMap<Condition, String> {
    let mut out = std::collections::BTreeMap::new();
    if r.failed() {
        let mut lines = vec!["a reconcile round failed.".to_string()];
        if let Some(e) = &r.error {
            lines.push(format!("• {e}"));
        }
        for (sync, errors) in &r.failed_syncs {
            lines.push(format!(
                "• sync `{sync}` was not applied: {}",
                errors.join("; ")
            ));
        }
        if !r.failures().is_empty() {
            let syncs: std::collections::BTreeSet<&str> =
                r.failures().iter().map(|f| f.sync.as_str()).collect();
            lines.push(format!(
                "• {} operation(s) failed in sync(s) {}",
                r.failures().len(),
                syncs
                    .into_iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        lines.push(
            "What to do: read the loop's log for the details, fix the cause (credentials, the source, the target); the loop retries with backoff and says when it is resolved.".to_string(),
        );
        out.insert(Condition::RoundFailed, lines.join("\n"));
    }
    for (sync, errors) in &r.guard_blocked {
        out.insert(
            Condition::GuardBlocked { sync: sync.clone() },
            format!(
                "the mass-removal guard stopped sync `{sync}`; it was not applied (the other syncs were): {}\nWhat to do: check the source and the `where` filter with `headcount plan --sync {sync}`; if the removals are intended, run `headcount apply --sync {sync} --allow-mass-removal` once.",
                errors.join("; ")
            ),
        );
    }
    if r.drift() > 0 {
        let per: Vec<String> = r
            .planned
            .iter()
            .map(|(s, n)| format!("`{s}`: {n}"))
            .collect();
        out.insert(
            Condition::Drift,
            format!(
                "drift found: {} change(s) to apply ({}); applied {}, {} failed. The audit log lists each one.",
                r.drift(),
                per.join(", "),
                r.applied.succeeded(),
                r.failures().len()
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_round_with_a_guard_and_drift_gives_three_conditions() {
        let r = RoundReport {
            failed_syncs: vec![("a".into(), vec!["source `hr` could not be read".into()])],
            guard_blocked: vec![("b".into(), vec!["12 deactivations exceed".into()])],
            planned: [("c".to_string(), 3)].into_iter().collect(),
            ..RoundReport::default()
        };
        let c = conditions(&r);
        assert_eq!(c.len(), 3);
        assert!(c[&Condition::RoundFailed].contains("sync `a` was not applied"));
        let g = &c[&Condition::GuardBlocked { sync: "b".into() }];
        assert!(g.contains("--allow-mass-removal") && g.contains("12 deactivations"));
        assert!(c[&Condition::Drift].contains("3 change(s)"));
        assert!(conditions(&RoundReport::default()).is_empty());
    }

    #[test]
    fn messages_name_the_config_and_are_bounded() {
        let n = Notice::Resolved(Condition::RoundFailed);
        assert_eq!(
            message(&n, "prod.yaml"),
            "headcount (prod.yaml): resolved: the last round succeeded"
        );
        let long = Notice::Raised(Condition::Drift, "x".repeat(10_000));
        assert!(message(&long, "c").chars().count() < MAX_TEXT + 40);
    }

    #[test]
    fn a_url_that_is_not_a_url_is_refused_naming_the_reference_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hook"), "not a url with-secret-bits\n").unwrap();
        let err = Notifier::new(
            &SecretRef::File("hook".into()),
            dir.path(),
            &Scrubber::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("file hook"), "{err}");
        assert!(!err.contains("secret-bits"), "{err}");
    }
}

#[cfg(test)]
mod send_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_webhook_that_cannot_be_reached_is_an_error_without_the_url() {
        // A port nothing listens on: bind, note the port, close.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{port}/services/T1/B2/very-secret-token");
        std::fs::write(dir.path().join("hook"), format!("{url}\n")).unwrap();
        let scrubber = Scrubber::default();
        let n = Notifier::new(&SecretRef::File("hook".into()), dir.path(), &scrubber).unwrap();
        let err = n.send("round failed").await.unwrap_err().to_string();
        assert!(err.contains("could not be sent"), "{err}");
        assert!(!err.contains("very-secret-token"), "{err}");
        assert!(
            scrubber.finds(&url),
            "the URL is registered with the run's scrubber"
        );
    }
}
