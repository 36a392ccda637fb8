//! Nothing lost, nothing doubled: the export is killed (SIGKILL) at random moments, run again
//! to completion, and the files it left hold every record exactly once.

mod common;
mod export_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{stderr, Harness};
use export_support::{output_files, records_by_id, rename_customers};
use servicetitan_sandbox::SandboxConfig;

const RECORDS: u64 = 1200;
const STREAMS: [&str; 2] = ["crm_customers", "jpm_jobs"];
const TENANTS: [i64; 2] = [1001, 1002];

/// A small xorshift generator; the seed is printed so that a failing round can be replayed.
struct Random(u64);

impl Random {
    fn seeded() -> Random {
        let seed = std::env::var("KILL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 | 1);
        eprintln!("kill test seed: {seed} (KILL_TEST_SEED={seed} replays it)");
        Random(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn harness() -> Harness {
    Harness::with_config(SandboxConfig { records: RECORDS, export_page_size: 100, ..SandboxConfig::default() })
}

fn export(h: &Harness, profile: &Path, out: &Path, state: &Path) -> Command {
    let mut command = h.bare_cli();
    command.arg("--config").arg(profile);
    for tenant in TENANTS {
        command.args(["--tenant", &tenant.to_string()]);
    }
    command.arg("export").args(STREAMS).arg("--out").arg(out).arg("--state").arg(state);
    command
}

/// Starts the export and SIGKILLs it after `after`.
fn run_and_kill(mut command: Command, after: Duration) {
    let mut child = command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("the binary starts");
    std::thread::sleep(after);
    let _ = child.kill(); // SIGKILL: no cleanup runs
    let _ = child.wait();
}

fn run_to_completion(mut command: Command) {
    let output = command.output().expect("the binary runs");
    assert!(output.status.success(), "the rerun fails: {}", stderr(&output));
}

/// Every record of every stream and tenant once, `RECORDS` of each.
fn assert_each_record_once(out: &Path, round: usize) {
    for stream in STREAMS {
        for tenant in TENANTS {
            let prefix = format!("{stream}.{tenant}");
            let seen = records_by_id(out, &prefix);
            let doubled: Vec<_> = seen.iter().filter(|(_, (n, _))| *n > 1).map(|(id, _)| *id).collect();
            assert!(
                doubled.is_empty(),
                "round {round}: {prefix}: {} records doubled, e.g. {:?}",
                doubled.len(),
                &doubled[..doubled.len().min(5)]
            );
            assert_eq!(seen.len() as u64, RECORDS, "round {round}: {prefix}: records lost");
        }
    }
}

/// A kill moment: a quarter of them early (before or around the first page), the rest
/// anywhere in a whole run and a bit after.
fn kill_moment(random: &mut Random, whole_run: Duration) -> Duration {
    let span = whole_run.as_millis() as u64 * 6 / 5;
    if random.below(4) == 0 {
        Duration::from_millis(random.below(60))
    } else {
        Duration::from_millis(random.below(span))
    }
}

#[test]
fn killed_at_random_moments_the_rerun_leaves_every_record_exactly_once_20_times() {
    let h = harness();
    let profile = h.write_profile("config.toml");
    let mut random = Random::seeded();

    let (out, state) = (h.dir.join("measure"), h.dir.join("measure.json"));
    let started = Instant::now();
    run_to_completion(export(&h, &profile, &out, &state));
    let whole_run = started.elapsed();
    eprintln!("a whole run takes {} ms", whole_run.as_millis());
    assert_each_record_once(&out, 0);

    for round in 1..=20 {
        let out = h.dir.join(format!("out-{round}"));
        let state = h.dir.join(format!("state-{round}.json"));
        let kills = 1 + random.below(3);
        let mut moments = Vec::new();
        for _ in 0..kills {
            let at = kill_moment(&mut random, whole_run);
            run_and_kill(export(&h, &profile, &out, &state), at);
            // Where the kill landed: how many of the four files were committed by then.
            moments.push((at.as_millis(), output_files(&out).len()));
        }
        run_to_completion(export(&h, &profile, &out, &state));
        eprintln!("round {round}: (kill after ms, files committed by then): {moments:?}");
        assert_each_record_once(&out, round);
    }
}

#[test]
fn a_run_killed_between_its_rename_and_its_state_save_is_not_doubled() {
    // The moment is made exactly: a complete run, then the state put back as it was before it,
    // which is what a kill right after the rename leaves.
    let h = harness();
    let profile = h.write_profile("config.toml");
    let (out, state) = (h.dir.join("out"), h.dir.join("state.json"));
    run_to_completion(export(&h, &profile, &out, &state));
    let before = std::fs::read(&state).unwrap();
    let changed = rename_customers(&h.sandbox, &[100000010, 100001100], "Once");
    run_to_completion(export(&h, &profile, &out, &state));
    std::fs::write(&state, &before).unwrap();
    run_to_completion(export(&h, &profile, &out, &state));

    let files: Vec<String> =
        output_files(&out).iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(files.iter().filter(|f| f.starts_with("crm_customers.1001.")).count(), 2, "{files:?}");
    let seen = records_by_id(&out, "crm_customers.1001");
    for (id, name) in &changed {
        // Once in the first file as it was, once in the second as it is now: not a third time.
        assert_eq!(seen[id].0, 2, "{id}");
        assert_eq!(seen[id].1["name"], name.as_str());
    }
    let second = std::fs::read_to_string(out.join("crm_customers.1001.000002.jsonl")).unwrap();
    assert_eq!(second.lines().count(), changed.len());
}

#[test]
fn killed_incremental_runs_yield_only_the_changed_records_exactly_once() {
    let h = harness();
    let profile = h.write_profile("config.toml");
    let mut random = Random::seeded();
    let (out, state) = (h.dir.join("out"), h.dir.join("state.json"));
    run_to_completion(export(&h, &profile, &out, &state));
    let mut known: Vec<std::path::PathBuf> = output_files(&out);

    for round in 1..=5 {
        let ids: Vec<i64> = (0..30).map(|_| 100_000_001 + random.below(RECORDS) as i64).collect();
        let names = rename_customers(&h.sandbox, &ids, &format!("Round {round}"));
        // An incremental run takes a token and a page per task: kill it within its first 300 ms.
        let at = Duration::from_millis(random.below(300));
        run_and_kill(export(&h, &profile, &out, &state), at);
        run_to_completion(export(&h, &profile, &out, &state));

        // The sandbox's tenants share their records, so both see the change; jobs did not change.
        let new: Vec<_> = output_files(&out).into_iter().filter(|f| !known.contains(f)).collect();
        let names_of_new: Vec<String> =
            new.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        let expected: Vec<String> =
            TENANTS.iter().map(|t| format!("crm_customers.{t}.{:06}.jsonl", round + 1)).collect();
        assert_eq!(names_of_new, expected, "round {round} (killed at {} ms)", at.as_millis());
        let want: Vec<(i64, String)> = names.into_iter().collect();
        for file in &new {
            let mut got: Vec<(i64, String)> = std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .map(|r| (r["id"].as_i64().unwrap(), r["name"].as_str().unwrap().to_string()))
                .collect();
            got.sort();
            assert_eq!(
                got,
                want,
                "round {round}: {}: only the changed records, once each, as they are now",
                file.display()
            );
        }
        known.extend(new);
    }
}
