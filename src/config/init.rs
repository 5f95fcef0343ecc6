//! `headcount init`: a commented starter config for a chosen source and target kind. Every
//! combination loads and validates as written (a test checks all of them), so a new user's
//! first `headcount validate` passes and they edit from something that works.

use crate::connectors::{SourceKind, TargetKind};

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
    let source_kind = match source {
        None => SourceKind::ALL[0],
        Some(k) => SourceKind::parse(k).ok_or_else(|| {
            let valid: Vec<&str> = SourceKind::ALL.iter().map(|k| k.as_str()).collect();
            unknown("source", k, &valid)
        })?,
    };
    let kind = match target {
        None => TargetKind::ALL[0],
        Some(k) => TargetKind::parse(k).ok_or_else(|| {
            let valid: Vec<&str> = TargetKind::ALL.iter().map(|k| k.as_str()).collect();
            unknown("target", k, &valid)
        })?,
    };
    let s = source_kind.starter();
    let t = kind.starter(&s);

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
    out.push_str(&format!(
        "    # What happens to a managed account that is no longer in scope.\n    removed: {:<36}# deactivate | delete | keep\n",
        t.removed
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
