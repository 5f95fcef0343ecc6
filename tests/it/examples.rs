//! The seed scenarios of SPEC section 2 as shipped in `examples/`, run end to end through the
//! binary: validate, plan, apply, plan (no changes), then a change in the source and the next
//! plan and apply. Vendor URLs in the examples are pointed at the testkit's emulators.

use headcount::testkit::mojo::{INDIVIDUALS_ID, MojoEmulator};
use serde_json::{Value, json};

use crate::support::work::Work;

const KEY: &str = "s2-mojo-key";

fn user<'a>(users: &'a [Value], email: &str) -> &'a Value {
    users
        .iter()
        .find(|u| u["email"] == email)
        .unwrap_or_else(|| panic!("no user {email} in {users:?}"))
}

fn group_id(emu: &MojoEmulator, name: &str) -> i64 {
    emu.groups()
        .into_iter()
        .find(|(_, n)| n == name)
        .map(|(id, _)| id)
        .unwrap_or_else(|| panic!("no group {name}: {:?}", emu.groups()))
}

/// S2: CSV → Mojo Helpdesk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_csv_to_mojo_end_to_end() {
    let emu = MojoEmulator::start(KEY).await;
    // Grace already has a helpdesk account: adopted and updated, never duplicated.
    emu.insert(json!({"email": "grace@example.com", "first_name": "G", "role_id": 10}));
    let base = emu.base_url();
    let work = Work::example(
        "s2-csv-to-mojo",
        &[("https://app.mojohelpdesk.com", base.as_str())],
    );
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut cmd = work.cmd();
        cmd.env("MOJO_ACCESS_KEY", KEY).args(&args).write_stdin("");
        cmd
    };

    run(&["validate"]).assert().success();

    let out = run(&["plan", "--detailed-exitcode"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("hr-users: 2 to create, 1 to adopt, 0 unchanged, 2 invalid"),
        "{stdout}"
    );
    assert!(stdout.contains("Invalid records (2)"), "{stdout}");
    assert!(
        stdout.contains("6 characters"),
        "a short password is named: {stdout}"
    );
    assert!(stdout.contains("(sensitive)"), "{stdout}");
    assert!(
        !stdout.contains("lovelace1815"),
        "a password is never shown: {stdout}"
    );

    run(&["apply", "--auto-approve", "--no-progress"])
        .assert()
        .success();
    let users = emu.users();
    assert_eq!(
        users.len(),
        3,
        "Ken (short password) and the row without email are skipped: {users:?}"
    );
    let ada = user(&users, "ada@example.com");
    assert_eq!(ada["role_id"], 20, "agent: yes → technician");
    assert_eq!(ada["company_id"], group_id(&emu, "Analytical Engines"));
    assert_eq!(ada["custom_field_employee_number"], "E-001");
    let grace = user(&users, "grace@example.com");
    assert_eq!(grace["first_name"], "Grace", "adopted and updated");
    assert_eq!(
        grace["company_id"],
        group_id(&emu, "Navy Labs"),
        "a new group is created"
    );
    let alan = user(&users, "alan@example.com");
    assert_eq!(
        alan["company_id"], INDIVIDUALS_ID,
        "an empty group is Individuals"
    );
    assert_eq!(emu.welcome_emails(), 0, "no welcome email unless notify");

    let out = run(&["plan", "--detailed-exitcode"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("hr-users: no changes, 3 unchanged"),
        "{stdout}"
    );

    // The next export: Ada renamed, Grace left, Alan's row gone, Linus hired.
    work.edit(
        "people.csv",
        "ada@example.com,Ada,",
        "ada@example.com,Augusta Ada,",
    );
    work.edit("people.csv", "E-002,active", "E-002,left");
    work.edit(
        "people.csv",
        "alan@example.com,Alan,Turing,+44 20 7946 0003,,no,,E-003,active\n",
        "linus@example.com,Linus,Torvalds,,Individuals,no,,E-006,active\n",
    );
    // Two removals out of three managed accounts trip the 20% guard until it is lifted.
    let out = run(&["plan"]).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("allow-mass-removal"), "{text}");

    let out = run(&["plan", "--allow-mass-removal"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 to create, 1 to update, 2 to deactivate"),
        "{stdout}"
    );
    run(&[
        "apply",
        "--auto-approve",
        "--no-progress",
        "--allow-mass-removal",
    ])
    .assert()
    .success();
    let users = emu.users();
    assert_eq!(users.len(), 4, "{users:?}");
    assert_eq!(user(&users, "ada@example.com")["first_name"], "Augusta Ada");
    assert_eq!(user(&users, "grace@example.com")["is_active"], false);
    assert_eq!(user(&users, "alan@example.com")["is_active"], false);
    let linus = user(&users, "linus@example.com");
    assert_eq!(linus["company_id"], INDIVIDUALS_ID);
    assert_eq!(linus["is_active"], true);

    let out = run(&["plan", "--detailed-exitcode"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// S3: a source → Mojo CSV import files, 3000 rows per file, only what changed.
#[test]
fn s3_mojo_import_files_end_to_end() {
    let work = Work::example("s3-mojo-import-files", &[]);
    let mut staff = std::fs::read_to_string(work.path("staff.csv")).unwrap();
    for i in 0..3100 {
        staff.push_str(&format!(
            "person{i:04}@example.com,Person,N{i:04},Operations,,CC-30,true\n"
        ));
    }
    work.write("staff.csv", &staff);

    work.run(&["validate"]).success();
    work.run(&["apply", "--auto-approve", "--no-progress"])
        .success();
    let first = work.path("out/export-000001");
    let rows = |file: &std::path::Path| {
        let text = std::fs::read_to_string(file).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap().to_string();
        (header, lines.count())
    };
    let (header, n1) = rows(&first.join("users-001.csv"));
    assert!(
        header.starts_with("First Name,Middle Name,Last Name,Email,Password,Company"),
        "{header}"
    );
    assert!(header.ends_with("Notes,cost_center"), "{header}");
    let (header2, n2) = rows(&first.join("users-002.csv"));
    assert_eq!(header2, header, "every file has the header row");
    assert_eq!((n1, n2), (3000, 103));
    assert!(!first.join("users-003.csv").exists());

    let out = work
        .cmd()
        .args(["plan", "--detailed-exitcode"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    work.edit("staff.csv", "Dorothy,Vaughan", "Dorothy,Vaughan-Johnson");
    work.edit("staff.csv", "CC-20,true\ndorothy", "CC-20,false\ndorothy");
    work.edit(
        "staff.csv",
        "margaret@example.com",
        "mary@example.com,Mary,Jackson,Wind Tunnel,,CC-40,true\nmargaret@example.com",
    );
    work.run(&["apply", "--auto-approve", "--no-progress"])
        .success();
    let second = work.path("out/export-000002");
    let users = std::fs::read_to_string(second.join("users-001.csv")).unwrap();
    assert_eq!(
        users.lines().count(),
        3,
        "header + rename + new hire: {users}"
    );
    assert!(
        users.contains("Vaughan-Johnson") && users.contains("mary@example.com"),
        "{users}"
    );
    let removals = std::fs::read_to_string(second.join("removals.csv")).unwrap();
    assert!(
        removals.contains("katherine@example.com,deactivate"),
        "{removals}"
    );
    assert!(
        std::fs::read_to_string(first.join("users-001.csv"))
            .unwrap()
            .lines()
            .count()
            == 3001,
        "an earlier export is never rewritten"
    );
    work.run(&["plan", "--detailed-exitcode"]).code(0);
}
