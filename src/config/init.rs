//! `headcount init`: a commented starter config for a chosen source and target kind. Every
//! combination loads and validates as written (a test checks all of them), so a new user's
//! first `headcount validate` passes and they edit from something that works.

use crate::catalog::TargetKind;

/// Source kinds `init` knows, the first being the default.
pub const STARTER_SOURCES: &[&str] = &[
    "csv",
    "google_workspace",
    "entra_id",
    "zendesk",
    "ldap",
    "scim",
];

/// Target kinds `init` knows, the first being the default.
pub const STARTER_TARGETS: &[&str] = &[
    "csv_export",
    "mojo_helpdesk",
    "zendesk",
    "scim",
    "request_tracker",
    "entra_guests",
];

/// What a source kind contributes: its YAML block and expressions for the common fields.
struct SourceStarter {
    name: &'static str,
    block: &'static str,
    email: &'static str,
    given: &'static str,
    family: &'static str,
    full: &'static str,
    login: &'static str,
    where_: Option<&'static str>,
    active: Option<&'static str>,
    /// Accounts created from this source start inactive (SPEC scenario S4).
    pending: bool,
}

fn source_starter(kind: &str) -> Option<SourceStarter> {
    Some(match kind {
        "csv" => SourceStarter {
            name: "hr",
            block: r#"  # An HR export: UTF-8, one header row; each row is a record whose keys are the headers.
  hr:
    kind: csv
    path: hr/people.csv                  # relative to this file
    # delimiter: ";"                     # one ASCII character; default ","
"#,
            email: "user.email",
            given: "user.first_name",
            family: "user.last_name",
            full: r#"user.first_name + " " + user.last_name"#,
            login: "user.email",
            where_: Some(r#"user.email != """#),
            active: None,
            pending: false,
        },
        "google_workspace" => SourceStarter {
            name: "workspace",
            block: r#"  # Google Workspace users (Admin SDK Directory API) through a service account with
  # domain-wide delegation for https://www.googleapis.com/auth/admin.directory.user.readonly.
  workspace:
    kind: google_workspace
    customer: my_customer                # or `domain: example.com`
    # query: "orgUnitPath='/Support'"    # optional Directory API query
    credentials:
      service_account_key: { env: GOOGLE_SA_KEY }   # the JSON key; or { file: secrets/sa.json }
      subject: admin@example.com                    # an admin to impersonate
    # groups: [support@example.com]      # adds `user.groups` (nested membership)
"#,
            email: "user.primaryEmail",
            given: "user.name.givenName",
            family: "user.name.familyName",
            full: "user.name.fullName",
            login: "user.primaryEmail",
            where_: Some("!user.archived"),
            active: Some("!user.suspended"),
            pending: false,
        },
        "entra_id" => SourceStarter {
            name: "entra",
            block: r#"  # Microsoft Entra ID users via Microsoft Graph (application permission User.Read.All).
  entra:
    kind: entra_id
    tenant_id: 00000000-0000-0000-0000-000000000000
    client_id: 00000000-0000-0000-0000-000000000000
    client_secret: { env: ENTRA_CLIENT_SECRET }
    select: [userPrincipalName, mail, givenName, surname, displayName, accountEnabled, userType]
    # groups: [00000000-0000-0000-0000-000000000000]   # adds `user.groups` (display names)
    # delta: true                        # delta queries between runs
"#,
            email: "user.mail",
            given: "user.givenName",
            family: "user.surname",
            full: "user.displayName",
            login: "user.userPrincipalName",
            where_: Some(r#"user.userType == "Member""#),
            active: Some("user.accountEnabled"),
            pending: false,
        },
        "zendesk" => SourceStarter {
            name: "zendesk_agents",
            block: r#"  # Zendesk Support users of the chosen roles. Nothing is ever written to the source.
  zendesk_agents:
    kind: zendesk
    subdomain: example                   # example.zendesk.com
    email: admin@example.com             # the agent the API token belongs to
    api_token: { env: SOURCE_ZENDESK_API_TOKEN }
    roles: [agent, admin]
    # custom_role_ids: [360000000000]
"#,
            email: "user.email",
            given: r#"user.name.split(" ")[0]"#,
            family: r#"user.name.split(" ").size() > 1 ? user.name.split(" ")[1] : """#,
            full: "user.name",
            login: "user.email",
            where_: None,
            active: Some("user.active && !user.suspended"),
            pending: true,
        },
        "ldap" => SourceStarter {
            name: "directory",
            block: r#"  # An LDAP directory, read with paged searches.
  directory:
    kind: ldap
    url: ldaps://ldap.example.com:636
    bind_dn: cn=headcount,ou=services,dc=example,dc=com
    bind_password: { env: LDAP_BIND_PASSWORD }
    base_dn: ou=people,dc=example,dc=com
    filter: "(memberOf=cn=support,ou=groups,dc=example,dc=com)"
    attributes: [uid, mail, givenName, sn, cn]
    # multi_valued: [memberOf]           # read as lists; others are single strings
    # page_size: 500
"#,
            email: "user.mail",
            given: "user.givenName",
            family: "user.sn",
            full: "user.cn",
            login: "user.uid",
            where_: Some(r#"user.mail != """#),
            active: None,
            pending: false,
        },
        "scim" => SourceStarter {
            name: "idp",
            block: r#"  # Users of a SCIM 2.0 service provider (read only).
  idp:
    kind: scim
    base_url: https://idp.example.com/scim/v2
    token: { env: SOURCE_SCIM_TOKEN }
    # filter: active eq true
"#,
            email: "user.emails[0].value",
            given: "user.name.givenName",
            family: "user.name.familyName",
            full: "user.displayName",
            login: "user.userName",
            where_: None,
            active: Some("user.active"),
            pending: false,
        },
        _ => return None,
    })
}

/// A target's YAML block, name, identity keys and `fields` lines built from a source's
/// expressions.
struct TargetStarter {
    name: &'static str,
    block: &'static str,
    identity: &'static str,
    fields: Vec<(String, String)>,
    extra: &'static str,
}

fn target_starter(kind: TargetKind, s: &SourceStarter) -> TargetStarter {
    let f = |k: &str, v: &str| (k.to_string(), v.to_string());
    match kind {
        TargetKind::CsvExport => TargetStarter {
            name: "mojo_files",
            block: r#"  # Mojo Helpdesk import files: each apply writes a new set holding only the rows that
  # changed; removals go to a separate file for an admin.
  mojo_files:
    kind: csv_export
    dir: exports                         # relative to this file
    max_rows_per_file: 3000              # Mojo imports at most 3000 rows at a time
    # custom_fields: [department]        # extra columns, mapped as custom_field_<key>
"#,
            identity: "[email]",
            fields: vec![
                f("email", s.email),
                f("first_name", s.given),
                f("last_name", s.family),
            ],
            extra: "      # group: user.department             # company; empty means `Individuals`\n",
        },
        TargetKind::MojoHelpdesk => TargetStarter {
            name: "helpdesk",
            block: r#"  # Mojo Helpdesk (REST API v2) with an admin's access key.
  helpdesk:
    kind: mojo_helpdesk
    base_url: https://app.mojohelpdesk.com
    access_key: { env: MOJO_ACCESS_KEY }
    # custom_fields: [department]        # map them as custom_field_<key>
    rate_limit: 120/min
    # timeout: 30s
"#,
            identity: "[email]",
            fields: vec![
                f("email", s.email),
                f("first_name", s.given),
                f("last_name", s.family),
                f("role", r#""user""#),
            ],
            extra: "      # group: user.department             # company; created when missing\n",
        },
        TargetKind::Zendesk => TargetStarter {
            name: "zendesk",
            block: r#"  # Zendesk Support, with an admin's API token.
  zendesk:
    kind: zendesk
    subdomain: example                   # example.zendesk.com
    email: admin@example.com
    api_token: { env: ZENDESK_API_TOKEN }
    # user_fields: [department]          # map them as user_fields.<key>
    # rate_limit: 700/min
"#,
            identity: "[email]",
            fields: vec![
                f("email", s.email),
                f("name", s.full),
                f("role", r#""end-user""#),
            ],
            extra: "      # organization: user.department\n",
        },
        TargetKind::Scim => TargetStarter {
            name: "app",
            block: r#"  # Any SCIM 2.0 service provider, with a bearer token.
  app:
    kind: scim
    base_url: https://app.example.com/scim/v2
    token: { env: SCIM_TOKEN }
    # rate_limit: 10/s
"#,
            identity: "[userName]",
            fields: vec![
                f("userName", s.login),
                f(r#"emails[type eq "work"].value"#, s.email),
                f("name.givenName", s.given),
                f("name.familyName", s.family),
                f("displayName", s.full),
            ],
            extra: "",
        },
        TargetKind::RequestTracker => TargetStarter {
            name: "rt",
            block: r#"  # Request Tracker 5 (REST 2.0), with the auth token of a user who may admin users.
  rt:
    kind: request_tracker
    base_url: https://rt.example.com
    token: { env: RT_TOKEN }
"#,
            identity: "[EmailAddress, Name]",
            fields: vec![
                f("Name", s.login),
                f("EmailAddress", s.email),
                f("RealName", s.full),
                f("Privileged", "true"),
            ],
            extra: "",
        },
        TargetKind::EntraGuests => TargetStarter {
            name: "guests",
            block: r#"  # Microsoft Entra ID B2B guests, invited through Graph (permission User.Invite.All).
  guests:
    kind: entra_guests
    tenant_id: 00000000-0000-0000-0000-000000000000
    client_id: 00000000-0000-0000-0000-000000000000
    client_secret: { env: ENTRA_GUESTS_CLIENT_SECRET }
    redirect_url: https://myapps.microsoft.com
"#,
            identity: "[email]",
            fields: vec![f("email", s.email), f("display_name", s.full)],
            extra: "",
        },
    }
}

/// A YAML scalar for `s`: plain when that is unambiguous, else single-quoted.
fn yaml_scalar(s: &str) -> String {
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ' ' | '(' | ')'))
        && !matches!(s, "true" | "false" | "null" | "yes" | "no" | "on" | "off");
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn unknown(what: &str, kind: &str, valid: &[&str]) -> String {
    let hint = crate::util::nearest(kind, valid.iter().copied())
        .map(|n| format!(" (did you mean `{n}`?)"))
        .unwrap_or_default();
    format!(
        "unknown {what} kind `{kind}`{hint}: choose one of {}",
        valid.join(", ")
    )
}

/// A commented starter `headcount.yaml` for the given kinds (default `csv` → `csv_export`).
pub fn starter(source: Option<&str>, target: Option<&str>) -> Result<String, String> {
    let source_kind = source.unwrap_or(STARTER_SOURCES[0]);
    let target_kind = target.unwrap_or(STARTER_TARGETS[0]);
    let s = source_starter(source_kind)
        .ok_or_else(|| unknown("source", source_kind, STARTER_SOURCES))?;
    let kind = TargetKind::parse(target_kind)
        .ok_or_else(|| unknown("target", target_kind, STARTER_TARGETS))?;
    let t = target_starter(kind, &s);

    let mut out = String::new();
    out.push_str("# yaml-language-server: $schema=./schemas/headcount.schema.json\n");
    out.push_str(
        "#
# headcount config, format version 1. Keep it in git.
#   headcount validate     checks it offline (add --online to try credentials)
#   headcount plan         shows what would change
#   headcount apply        makes the changes, after asking
#   headcount fields KIND  lists the fields a target kind has
# Secrets are never written here: use { env: NAME } or { file: PATH }.
version: 1

# Which accounts each sync manages; the lock and the journal sit next to it.
state:
  path: .headcount/state.json

sources:
",
    );
    out.push_str(s.block);
    out.push_str("\ntargets:\n");
    out.push_str(t.block);
    out.push_str(&format!(
        "
syncs:
  - name: {source}-to-{target}
    from: {source}
    to: {target}
",
        source = s.name,
        target = t.name,
    ));
    out.push_str(
        "    # Who is in scope: a CEL expression over `user` (the source record) and `source`\n    # (its name). Default: every record.\n",
    );
    match s.where_ {
        Some(w) => out.push_str(&format!("    where: {}\n", yaml_scalar(w))),
        None => out.push_str("    # where: 'user.email.endsWith(\"@example.com\")'\n"),
    }
    out.push_str(&format!(
        "    # Target fields that match a person to an existing account, in precedence order.\n    identity: {}\n",
        t.identity
    ));
    out.push_str(
        "    # Target field: CEL expression. `null` leaves the field unset.\n    fields:\n",
    );
    for (field, expr) in &t.fields {
        out.push_str(&format!(
            "      {}: {}\n",
            yaml_scalar_key(field),
            yaml_scalar(expr)
        ));
    }
    out.push_str(t.extra);
    out.push_str("    # Should the account be active? Default: true.\n");
    match s.active {
        Some(a) => out.push_str(&format!("    active: {}\n", yaml_scalar(a))),
        None => out.push_str("    # active: 'user.status != \"left\"'\n"),
    }
    if s.pending {
        out.push_str(
            "    # Created inactive: a person activates them in the target; headcount never does.\n    on_create: { active: false, notify: false }\n",
        );
    } else {
        out.push_str(
            "    on_create: { active: true, notify: false }   # notify: send the target's welcome email\n",
        );
    }
    let removed = if kind == TargetKind::EntraGuests {
        "delete                              # deactivate | delete | keep"
    } else {
        "deactivate                          # deactivate | delete | keep"
    };
    out.push_str(&format!(
        "    # What happens to a managed account that is no longer in scope.\n    removed: {removed}\n"
    ));
    out.push_str(
        "    # manage: all                       # also take over accounts headcount did not create,\n    # protect: [admin@example.com]      # except these (default: `manage: owned`)\n",
    );
    out.push_str(
        "    # Refuse a plan that removes more than this (a count or a share of managed accounts).\n    limits: { max_removals: \"10%\" }\n",
    );
    Ok(out)
}

/// A mapping key: plain when safe, else single-quoted (SCIM paths hold `[`, `"` and spaces).
fn yaml_scalar_key(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_starter_starts_with_the_modeline() {
        let text = starter(None, None).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=./schemas/headcount.schema.json\n")
        );
        assert!(text.contains("kind: csv\n"));
        assert!(text.contains("kind: csv_export\n"));
    }

    #[test]
    fn unknown_kinds_list_the_valid_ones() {
        let e = starter(Some("googl_workspace"), None).unwrap_err();
        assert!(e.contains("did you mean `google_workspace`"), "{e}");
        assert!(
            e.contains("csv, google_workspace, entra_id, zendesk, ldap, scim"),
            "{e}"
        );
        let e = starter(None, Some("jira")).unwrap_err();
        assert!(e.contains("csv_export, mojo_helpdesk"), "{e}");
    }

    #[test]
    fn quoting() {
        assert_eq!(yaml_scalar("user.email"), "user.email");
        assert_eq!(yaml_scalar("!user.archived"), "'!user.archived'");
        assert_eq!(yaml_scalar(r#"user.email != """#), r#"'user.email != ""'"#);
        assert_eq!(yaml_scalar("true"), "'true'");
        assert_eq!(yaml_scalar_key("name.givenName"), "name.givenName");
        assert_eq!(
            yaml_scalar_key(r#"emails[type eq "work"].value"#),
            r#"'emails[type eq "work"].value'"#
        );
    }
}
