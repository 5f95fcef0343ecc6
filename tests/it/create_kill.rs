//! Issue 7, point 5: a kill never duplicates. A SCIM emulator that does not enforce unique
//! `userName`s holds each create's answer for 2 s and applies it at the end of that delay, even
//! when the client is gone. An apply is SIGKILLed while its create is held; the next runs must
//! find the account the server finished meanwhile (or refuse to create it again while it may
//! still appear), never create it a second time. Three rounds, one new person each. Traffic
//! goes to 127.0.0.1 only, and every wait is bounded.

use crate::support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use headcount::testkit::scim::ScimEmulator;
use support::{ConfigOptions, Person, Workspace};

const ROUNDS: usize = 3;
const HOLD: Duration = Duration::from_secs(2);
const RUN_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_create_finished_after_a_kill_is_never_duplicated() {
    let rt = support::runtime();
    let emu = rt.block_on(ScimEmulator::start());
    emu.set_allow_duplicates(true);
    emu.set_create_delay(Some(HOLD));
    let work = Workspace::new(
        &emu.base_url(),
        "t",
        ConfigOptions {
            removed: "keep",
            timeout: "10s",
            rate_limit: "2000/s",
        },
    );
    let mut people = Vec::new();
    for round in 0..ROUNDS {
        let person = Person::new(&format!("kill{round}"), "Kim", &format!("Round{round}"));
        people.push(person);
        work.write_people(&people);
        let posts_before = emu.log().method("POST").len();

        // The apply, killed while the server holds its create.
        let mut child = work
            .command(&["apply", "--auto-approve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn apply");
        let deadline = Instant::now() + RUN_LIMIT;
        while emu.log().method("POST").len() == posts_before {
            assert!(
                Instant::now() < deadline,
                "round {round}: the create never reached the server"
            );
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!("round {round}: apply ended ({status}) before its create was sent");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().expect("SIGKILL apply");
        child.wait().expect("wait");
        let name = format!("kill{round}");
        let count = || {
            emu.users()
                .iter()
                .filter(|u| u["userName"] == name.as_str())
                .count()
        };
        assert_eq!(
            count(),
            0,
            "round {round}: the server still holds the create"
        );

        // The next applies, right away and until one succeeds: while the create is held, the
        // account cannot be found, and the plan refuses to create it again, saying why.
        let mut refused = 0;
        let mut done = false;
        for _ in 0..20 {
            let out = work.run_with_limit(&["apply", "--auto-approve"], RUN_LIMIT);
            if out.success() {
                done = true;
                break;
            }
            assert!(
                out.stderr.contains("no known outcome") || out.stdout.contains("no known outcome"),
                "round {round}: a failed apply must be the refusal\n{}",
                out.both()
            );
            refused += 1;
            std::thread::sleep(Duration::from_millis(250));
        }
        assert!(done, "round {round}: apply never succeeded after the kill");
        eprintln!("round {round}: {refused} apply run(s) refused while the create was held");
        // Whatever the timing, the held create lands: give it its delay, then count.
        std::thread::sleep(HOLD);
        assert_eq!(count(), 1, "round {round}: {name} exists exactly once");
        let plan = work.run_with_limit(&["plan", "--detailed-exitcode"], RUN_LIMIT);
        assert_eq!(
            plan.code,
            Some(0),
            "round {round}: no changes left\n{}",
            plan.both()
        );
        let state = std::fs::read_to_string(work.path(".headcount/state.json")).expect("state");
        assert!(
            !state.contains("\"intents\""),
            "round {round}: intents settled\n{state}"
        );
    }
    let names: Vec<String> = emu
        .users()
        .iter()
        .map(|u| u["userName"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        names,
        ["kill0", "kill1", "kill2"],
        "no duplicate, none lost"
    );
}
