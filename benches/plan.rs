//! Plan-time benchmark (SPEC section 14): records, live accounts and state for N users are built
//! in memory, then the planner runs once. Prints one line of figures per run.
//!
//! Run one size per process so that peak memory is per size:
//!   cargo bench --bench plan -- 10000
//! or all sizes: ./scripts/bench.sh

use std::collections::BTreeMap;
use std::time::Instant;

use headcount::config::{ManagePolicy, OnCreate, RemovedPolicy};
use headcount::connectors::TargetKind;
use headcount::connectors::{LiveAccount, SourceRecord};
use headcount::expr::Expr;
use headcount::planner::{MaxRemovalsSpec, SyncInput, SyncSpec, plan_sync};
use headcount::state::{ManagedAccount, Origin, State, SyncState};
use serde_json::json;

fn expr(s: &str) -> Expr {
    match Expr::compile(s) {
        Ok(e) => e,
        Err(e) => panic!("benchmark expression {s}: {e}"),
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000]
    } else {
        sizes
    };
    for n in sizes {
        run(n);
    }
}

fn run(n: usize) {
    let spec = SyncSpec {
        name: "staff".into(),
        source: "hr".into(),
        target: "helpdesk".into(),
        target_fields: TargetKind::MojoHelpdesk.field_table(&["dept".into()]),
        where_: Some(expr(r#"user.status != "left""#)),
        identity: vec!["email".into()],
        fields: vec![
            ("email".into(), Some(expr("user.email"))),
            ("first_name".into(), Some(expr("user.first.trim()"))),
            ("last_name".into(), Some(expr("user.last"))),
            (
                "role".into(),
                Some(expr(r#"user.dept == "IT" ? "technician" : "user""#)),
            ),
            ("group".into(), Some(expr("user.company"))),
            ("custom_field_dept".into(), Some(expr("user.dept.upper()"))),
        ],
        active: Some(expr(r#"user.status != "suspended""#)),
        on_create: OnCreate::default(),
        removed: RemovedPolicy::Deactivate,
        manage: ManagePolicy::Owned,
        protect: vec![],
        max_removals: MaxRemovalsSpec::Percent(10.0),
    };
    let t0 = Instant::now();
    // 1% new hires, 2% leavers, 5% renamed, the rest unchanged.
    let records: Vec<SourceRecord> = (0..n)
        .map(|i| {
            let status = if i % 50 == 0 { "left" } else { "active" };
            let first = if i % 20 == 0 {
                format!("Renamed{i}")
            } else {
                format!("First{i}")
            };
            SourceRecord {
                label: format!("row {}", i + 2),
                data: json!({
                    "email": format!("user{i}@example.com"), "first": first, "last": "Person",
                    "dept": if i % 10 == 0 { "IT" } else { "Sales" }, "company": "Acme",
                    "status": status,
                }),
            }
        })
        .collect();
    let mut state = State::new("bench".into());
    let mut accounts = BTreeMap::new();
    let live: Vec<LiveAccount> = (0..n)
        .filter(|i| i % 100 != 1)
        .map(|i| {
            let id = format!("{}", 1_000_000 + i);
            accounts.insert(
                id.clone(),
                ManagedAccount {
                    identity: BTreeMap::from([("email".into(), format!("user{i}@example.com"))]),
                    fields: BTreeMap::new(),
                    active: Some(true),
                    origin: Origin::Created,
                    deactivated_by_headcount: false,
                },
            );
            LiveAccount {
                id,
                active: true,
                fields: BTreeMap::from([
                    ("email".into(), json!(format!("user{i}@example.com"))),
                    ("first_name".into(), json!(format!("First{i}"))),
                    ("last_name".into(), json!("Person")),
                    (
                        "role".into(),
                        json!(if i % 10 == 0 { "technician" } else { "user" }),
                    ),
                    ("group".into(), json!("Acme")),
                    (
                        "custom_field_dept".into(),
                        json!(if i % 10 == 0 { "IT" } else { "SALES" }),
                    ),
                ]),
            }
        })
        .collect();
    state.syncs.insert(
        "staff".into(),
        SyncState {
            target: "helpdesk".into(),
            accounts,
        },
    );
    let build = t0.elapsed();
    let rss_inputs = peak_rss_mib();
    let t1 = Instant::now();
    let planned = plan_sync(SyncInput {
        spec: &spec,
        records: Ok(&records),
        live: Ok(&live),
        state: Some(&state),
        allow_mass_removal: true,
    });
    let plan_time = t1.elapsed();
    let s = planned.plan.summary;
    println!(
        "users={n} build_inputs={:.2}s plan={:.3}s ({:.0} users/s) rss_after_inputs={:.0}MiB peak_rss={:.0}MiB create={} update={} deactivate={} unchanged={}",
        build.as_secs_f64(),
        plan_time.as_secs_f64(),
        n as f64 / plan_time.as_secs_f64(),
        rss_inputs,
        peak_rss_mib(),
        s.create,
        s.update,
        s.deactivate,
        s.unchanged
    );
}
