//! The one list of connector kinds. Each line names a kind once: its name in the config, its
//! variant and its config entry type (in the kind's folder). Everything kind-specific is
//! generated from it by exhaustive matches, so a kind cannot be left out of the schema,
//! `headcount fields`, `init` or the builder. Adding a connector: a new folder, one line here.

use super::spec::{BuildContext, SourceSpec, SourceStarter, TargetSpec, TargetStarter};
use super::{Source, Target, csv, entra, google, ldap, mojo, request_tracker, scim, zendesk};
use crate::model::checks::Checks;
use crate::model::{ConnectorError, FieldSpec, FieldTable, SecretRef};

macro_rules! registry {
    (
        sources { $( $skind:literal => $SVariant:ident($SCfg:ty), )* }
        targets { $( $tkind:literal => $TVariant:ident($TCfg:ty), )* }
    ) => {
        /// The source kinds this build knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, clap::ValueEnum)]
        pub enum SourceKind {
            $( #[serde(rename = $skind)] #[value(name = $skind)] $SVariant, )*
        }

        /// The target kinds this build knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, clap::ValueEnum)]
        pub enum TargetKind {
            $( #[serde(rename = $tkind)] #[value(name = $tkind)] $TVariant, )*
        }

        /// A source of people. `kind` picks the connector.
        #[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
        #[serde(tag = "kind")]
        pub enum SourceConfig {
            $( #[serde(rename = $skind)] $SVariant($SCfg), )*
        }

        /// A target where accounts are kept. `kind` picks the connector.
        #[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
        #[serde(tag = "kind")]
        pub enum TargetConfig {
            $( #[serde(rename = $tkind)] $TVariant($TCfg), )*
        }

        impl SourceKind {
            /// Every kind, in registry order (the first is `init`'s default).
            pub const ALL: &'static [SourceKind] = &[ $( SourceKind::$SVariant, )* ];

            pub fn as_str(self) -> &'static str {
                match self { $( SourceKind::$SVariant => $skind, )* }
            }

            /// The kind's block in `headcount init`.
            pub fn starter(self) -> SourceStarter {
                match self { $( SourceKind::$SVariant => <$SCfg as SourceSpec>::starter(), )* }
            }
        }

        impl TargetKind {
            /// Every kind, in registry order (the first is `init`'s default).
            pub const ALL: &'static [TargetKind] = &[ $( TargetKind::$TVariant, )* ];

            pub fn as_str(self) -> &'static str {
                match self { $( TargetKind::$TVariant => $tkind, )* }
            }

            /// The kind's fixed fields.
            pub fn fields(self) -> &'static [FieldSpec] {
                match self { $( TargetKind::$TVariant => <$TCfg as TargetSpec>::FIELDS, )* }
            }

            /// The prefix of custom fields, for kinds that have them.
            pub fn custom_field_prefix(self) -> Option<&'static str> {
                match self { $( TargetKind::$TVariant => <$TCfg as TargetSpec>::CUSTOM_PREFIX, )* }
            }

            /// Why the kind cannot delete accounts, when it cannot (`removed: delete` is refused).
            pub fn no_delete(self) -> Option<&'static str> {
                match self { $( TargetKind::$TVariant => <$TCfg as TargetSpec>::NO_DELETE, )* }
            }

            /// The config key listing the custom field keys.
            pub fn custom_fields_key(self) -> &'static str {
                match self { $( TargetKind::$TVariant => <$TCfg as TargetSpec>::CUSTOM_FIELDS_KEY, )* }
            }

            /// The kind's block in `headcount init`.
            pub fn starter(self, source: &SourceStarter) -> TargetStarter {
                match self { $( TargetKind::$TVariant => <$TCfg as TargetSpec>::starter(source), )* }
            }
        }

        impl SourceConfig {
            pub fn kind(&self) -> SourceKind {
                match self { $( SourceConfig::$SVariant(_) => SourceKind::$SVariant, )* }
            }

            pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
                match self { $( SourceConfig::$SVariant(c) => c.secrets(), )* }
            }

            pub fn check(&self, checks: &mut dyn Checks) {
                match self { $( SourceConfig::$SVariant(c) => c.check(checks), )* }
            }

            /// Builds the connector; errors do not repeat `name` (the caller prefixes it).
            pub fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Source>, ConnectorError> {
                match self { $( SourceConfig::$SVariant(c) => c.build(name, cx), )* }
            }
        }

        impl TargetConfig {
            pub fn kind(&self) -> TargetKind {
                match self { $( TargetConfig::$TVariant(_) => TargetKind::$TVariant, )* }
            }

            /// Custom field keys declared for this target.
            pub fn custom_fields(&self) -> &[String] {
                match self { $( TargetConfig::$TVariant(c) => c.custom_fields(), )* }
            }

            pub fn secrets(&self) -> Vec<(&'static str, &SecretRef)> {
                match self { $( TargetConfig::$TVariant(c) => c.secrets(), )* }
            }

            pub fn check(&self, checks: &mut dyn Checks) {
                match self { $( TargetConfig::$TVariant(c) => c.check(checks), )* }
            }

            /// Builds the connector; errors do not repeat `name` (the caller prefixes it).
            pub fn build(&self, name: &str, cx: &BuildContext<'_>) -> Result<Box<dyn Target>, ConnectorError> {
                match self { $( TargetConfig::$TVariant(c) => c.build(name, cx), )* }
            }
        }
    };
}

registry! {
    sources {
        "csv" => Csv(csv::CsvSourceConfig),
        "google_workspace" => GoogleWorkspace(google::GoogleWorkspaceConfig),
        "entra_id" => EntraId(entra::EntraIdConfig),
        "zendesk" => Zendesk(zendesk::ZendeskSourceConfig),
        "ldap" => Ldap(ldap::LdapConfig),
        "scim" => Scim(scim::ScimSourceConfig),
    }
    targets {
        "csv_export" => CsvExport(mojo::CsvExportConfig),
        "mojo_helpdesk" => MojoHelpdesk(mojo::MojoHelpdeskConfig),
        "zendesk" => Zendesk(zendesk::ZendeskTargetConfig),
        "scim" => Scim(scim::ScimTargetConfig),
        "request_tracker" => RequestTracker(request_tracker::RequestTrackerConfig),
        "entra_guests" => EntraGuests(entra::EntraGuestsConfig),
    }
}

impl SourceKind {
    pub fn parse(s: &str) -> Option<SourceKind> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

impl TargetKind {
    pub fn parse(s: &str) -> Option<TargetKind> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// The field table of a target of this kind with these custom fields.
    pub fn field_table(self, custom: &[String]) -> FieldTable {
        FieldTable {
            kind: self.as_str(),
            fixed: self.fields(),
            custom_prefix: self.custom_field_prefix(),
            custom: custom.to_vec(),
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TargetConfig {
    /// The field table of this target.
    pub fn field_table(&self) -> FieldTable {
        self.kind().field_table(self.custom_fields())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    use clap::ValueEnum;

    use super::*;
    use crate::connectors::{BuildContext, ClientPool};

    /// The `kind` constants of a config enum in the JSON Schema.
    fn schema_kinds(def: &str) -> Vec<String> {
        let schema: serde_json::Value =
            serde_json::from_str(&crate::config::schema_json()).unwrap();
        schema["$defs"][def]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                v["properties"]["kind"]["const"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn every_kind_is_in_the_schema_the_cli_and_init() {
        let sources: Vec<&str> = SourceKind::ALL.iter().map(|k| k.as_str()).collect();
        let targets: Vec<&str> = TargetKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(schema_kinds("SourceConfig"), sources);
        assert_eq!(schema_kinds("TargetConfig"), targets);
        // `headcount fields KIND` parses its argument with clap's ValueEnum.
        assert_eq!(TargetKind::value_variants(), TargetKind::ALL);
        for kind in TargetKind::ALL {
            let parsed = TargetKind::from_str(kind.as_str(), false).unwrap();
            assert_eq!(parsed, *kind);
            assert!(
                kind.fields().iter().any(|f| f.identity.is_some()),
                "{kind} has no identity-capable field"
            );
        }
        for kind in SourceKind::ALL {
            assert!(
                kind.starter().block.contains(&format!("kind: {kind}\n")),
                "the init block of source kind {kind} does not declare it"
            );
        }
        let source = SourceKind::ALL[0].starter();
        for kind in TargetKind::ALL {
            assert!(
                kind.starter(&source)
                    .block
                    .contains(&format!("kind: {kind}\n")),
                "the init block of target kind {kind} does not declare it"
            );
        }
    }

    #[test]
    fn every_kind_builds_or_says_it_is_not_in_this_build() {
        let dir = tempfile::tempdir().unwrap();
        let pool = ClientPool::default();
        let cx = BuildContext::new(dir.path(), &pool);
        for source in SourceKind::ALL {
            for target in TargetKind::ALL {
                let text =
                    crate::config::starter(Some(source.as_str()), Some(target.as_str())).unwrap();
                let cfg = crate::config::parse(&text, Path::new("headcount.yaml")).unwrap();
                let (_, s) = cfg.sources.first().unwrap();
                let (_, t) = cfg.targets.first().unwrap();
                assert_eq!(s.kind(), *source);
                assert_eq!(t.kind(), *target);
                for built in [s.build("s", &cx).err(), t.build("t", &cx).err()]
                    .into_iter()
                    .flatten()
                {
                    // The starters name secrets that are not set here; anything else must be
                    // an honest "not in this build".
                    assert!(
                        matches!(
                            built,
                            ConnectorError::Config(_) | ConnectorError::Unsupported { .. }
                        ),
                        "{source} -> {target}: {built:?}"
                    );
                }
            }
        }
    }
}
