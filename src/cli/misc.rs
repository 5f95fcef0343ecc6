//! `init`, `validate`, `fields`.

use headcount::engine::Engine;
use headcount::model::Writable;

use super::args::{Cli, FieldsArgs, Format, InitArgs, ValidateArgs};
use super::{EXIT_ERROR, EXIT_OK, Ui};

pub(crate) fn init(cli: &Cli, args: &InitArgs, ui: &Ui) -> anyhow::Result<u8> {
    let path = &cli.config;
    if path.exists() && !args.force {
        anyhow::bail!(
            "{} already exists: use --force to overwrite it, or -c to write another file",
            path.display()
        );
    }
    let text = headcount::config::starter(Some(&args.source), Some(&args.target))
        .map_err(|e| anyhow::anyhow!(e))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let schema_dir = dir.join("schemas");
    std::fs::create_dir_all(&schema_dir)?;
    std::fs::write(
        schema_dir.join("headcount.schema.json"),
        headcount::config::schema_json(),
    )?;
    std::fs::write(path, text)?;
    outln!(
        "Wrote {} and {}.",
        path.display(),
        schema_dir.join("headcount.schema.json").display()
    );
    ui.note("Edit it, then run `headcount validate` and `headcount plan`.");
    Ok(EXIT_OK)
}

pub(crate) async fn validate(cli: &Cli, args: &ValidateArgs, ui: &Ui) -> anyhow::Result<u8> {
    let engine = Engine::open_with(&cli.config, ui.color_stderr, super::out::scrubber())?;
    for w in &engine.warnings {
        ui.note(format!("warning: {w}"));
    }
    if args.online {
        let problems =
            headcount::config::check_secrets(&engine.loaded.config, &engine.loaded.base_dir);
        if !problems.is_empty() {
            for p in &problems {
                errln!("error: {p}");
            }
            return Ok(EXIT_ERROR);
        }
        let conns = engine.connect(&engine.specs, true)?;
        let snap = engine.probe(&conns).await;
        let mut failed = false;
        let mut names: Vec<_> = snap.records.keys().collect();
        names.sort();
        for name in names {
            match &snap.records[name] {
                Ok(r) => outln!("source `{name}`: read {} records", r.len()),
                Err(e) => {
                    failed = true;
                    outln!("source `{name}`: {e}");
                }
            }
        }
        let mut names: Vec<_> = snap.live.keys().collect();
        names.sort();
        for name in names {
            match &snap.live[name] {
                Ok(l) => outln!("target `{name}`: listed {} accounts", l.len()),
                Err(e) => {
                    failed = true;
                    outln!("target `{name}`: {e}");
                }
            }
        }
        if failed {
            return Ok(EXIT_ERROR);
        }
    }
    outln!(
        "The config {} is valid ({} sync{}).",
        engine.loaded.path.display(),
        engine.specs.len(),
        if engine.specs.len() == 1 { "" } else { "s" }
    );
    Ok(EXIT_OK)
}

pub(crate) fn fields(args: &FieldsArgs) -> anyhow::Result<u8> {
    let fields = args.kind.fields();
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(fields)?),
        Format::Text | Format::Markdown => {
            let rows: Vec<[String; 5]> = fields
                .iter()
                .map(|f| {
                    [
                        f.name.to_string(),
                        f.ty.to_string(),
                        match f.writable {
                            Writable::Always => "yes".to_string(),
                            Writable::CreateOnly => "create only".to_string(),
                        },
                        if f.identity.is_some() { "yes" } else { "no" }.to_string(),
                        {
                            let mut n = f.notes.to_string();
                            if f.sensitive {
                                n = if n.is_empty() {
                                    "sensitive".into()
                                } else {
                                    format!("sensitive; {n}")
                                };
                            }
                            n
                        },
                    ]
                })
                .collect();
            let header = ["FIELD", "TYPE", "WRITABLE", "IDENTITY", "NOTES"];
            let mut widths = header.map(str::len);
            for r in &rows {
                for (i, c) in r.iter().enumerate() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
            let line = |cells: [&str; 5]| {
                let mut s = String::new();
                for (i, c) in cells.iter().enumerate() {
                    if i == 4 {
                        s.push_str(c);
                    } else {
                        s.push_str(&format!("{c:<w$}  ", w = widths[i]));
                    }
                }
                s.trim_end().to_string()
            };
            outln!("{}", line(header));
            for r in &rows {
                outln!("{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
            }
            if let Some(prefix) = args.kind.custom_field_prefix() {
                outln!(
                    "{prefix}<key>  string  yes  no  custom field; declare the key in the target's `{}` list",
                    args.kind.custom_fields_key()
                );
            }
        }
    }
    Ok(EXIT_OK)
}
