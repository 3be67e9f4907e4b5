//! One sweep store shared by many workers: claims raced for under a
//! barrier, leases that expire or are renewed, workers killed at random
//! and restarted until the grid is done, a worker stalled past its lease,
//! committed runs that went bad (named by `check` and `report`, trained
//! again by `--resume`), a disk that fills up, what a killed commit or
//! claim leaves behind, a sweep cancelled through its flag (the Python
//! package's Ctrl-C), and `sweep status`.

mod common;

use common::temp_dir;
use lmech::backend::device::Device;
use lmech::config::Config;
use lmech::run::Record;
use lmech::sweep::claim::{now_unix, ClaimRecord, Claims, Worker};
use lmech::sweep::heartbeat::Heartbeat;
use lmech::sweep::SweepSpec;
use lmech::train::{train, RunOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn lmech(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lmech"))
        .args(args)
        .output()
        .expect("cannot start the lmech binary")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `lmech --threads 1 sweep SPEC --out OUT --device cpu --quiet EXTRA...`.
fn sweep(spec: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["--threads", "1", "sweep", spec.to_str().unwrap(), "--out"];
    args.extend([out.to_str().unwrap(), "--device", "cpu", "--quiet"]);
    args.extend_from_slice(extra);
    lmech(&args)
}

fn sweep_ok(spec: &Path, out: &Path, extra: &[&str]) -> String {
    let o = sweep(spec, out, extra);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every path under `dir`, relative to it (empty when `dir` is absent).
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            found.push(p.strip_prefix(dir).unwrap().display().to_string());
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    found.sort();
    found
}

fn grid_ids(spec_path: &Path) -> BTreeSet<String> {
    let spec = SweepSpec::load(spec_path).unwrap();
    spec.expand().unwrap().into_iter().map(|r| r.id).collect()
}

/// Every metric of a run but the clock, record by record.
fn metrics(run: &Path) -> Vec<Vec<(String, String)>> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let r: Record = serde_json::from_str(l).unwrap();
            r.iter()
                .filter(|(k, _)| *k != "time_s")
                .map(|(k, v)| (k.to_string(), format!("{v:?}")))
                .collect()
        })
        .collect()
}

/// The metrics of the run in `run` trained again alone, in `scratch`.
fn metrics_alone(run: &Path, scratch: PathBuf) -> Vec<Vec<(String, String)>> {
    let cfg = Config::load(&run.join("config.toml"), &[]).unwrap();
    let opts = RunOptions {
        out: scratch.clone(),
        device: Device::Cpu,
        progress: false,
    };
    train(&cfg, &opts).unwrap();
    metrics(&scratch)
}

fn claims_of(root: &Path, lease_ms: u64) -> Claims {
    Claims::new(root, Worker::here(Duration::from_millis(lease_ms)))
}

/// Two workers that start together on a free run, or on one whose claim
/// expired: exactly one gets it, every time.
#[test]
fn two_workers_racing_for_one_claim_exactly_one_wins() {
    let dir = temp_dir("claim-race");
    let root: &Path = &dir;
    for round in 0..150 {
        let id = format!("run{round}");
        if round % 2 == 1 {
            // A claim whose lease ran out before the race starts.
            let old = claims_of(root, 1);
            assert!(old.try_claim(&id).unwrap().is_some());
            std::thread::sleep(Duration::from_millis(3));
        }
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (barrier, id, root) = (barrier.clone(), id.clone(), root.to_path_buf());
                std::thread::spawn(move || {
                    let claims = claims_of(&root, 60_000);
                    barrier.wait();
                    claims.try_claim(&id).unwrap().is_some()
                })
            })
            .collect();
        let won: Vec<bool> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(
            won.iter().filter(|&&w| w).count(),
            1,
            "round {round}: {won:?}"
        );
    }
}

/// A worker killed while claiming leaves at most its draft, which holds
/// nothing: the run is free at once, and the claim that takes it is the
/// first, written whole, with no draft of its own left behind.
#[test]
fn a_worker_killed_while_claiming_holds_nothing() {
    let dir = temp_dir("claim-draft");
    let claims_dir = dir.join("claims").join("r");
    std::fs::create_dir_all(&claims_dir).unwrap();
    std::fs::write(claims_dir.join(".1.gone-1-0.draft"), "{\"worker\":").unwrap();
    let c = claims_of(&dir, 60_000);
    let claim = c.try_claim("r").unwrap().expect("a draft held the run");
    assert!(c.holds(&claim).unwrap());
    let expected = [".1.gone-1-0.draft", "1.claim"].map(String::from);
    assert_eq!(names(&claims_dir), BTreeSet::from(expected));
    let rec: ClaimRecord =
        serde_json::from_slice(&std::fs::read(claims_dir.join("1.claim")).unwrap()).unwrap();
    assert_eq!(rec.worker, c.worker().token);
}

/// A heartbeat told to stop before its thread first waits (a worker that
/// found nothing to do) stops at once, not a beat later: with an hour's
/// lease, a missed stop would keep it 15 minutes.
#[test]
fn a_heartbeat_stopped_before_it_starts_stops() {
    let dir = temp_dir("heartbeat-stop");
    let claims = Claims::new(&dir, Worker::here(Duration::from_secs(3600)));
    let heartbeat = Heartbeat::new(&claims);
    heartbeat.stop();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            heartbeat.run();
            tx.send(()).unwrap();
        });
        let stopped = rx.recv_timeout(Duration::from_secs(120));
        // Lets the thread out either way, so a failure does not hang.
        heartbeat.stop();
        assert!(stopped.is_ok(), "the heartbeat missed a stop");
    });
}

/// A claim file as another worker would have written it.
fn foreign_claim(root: &Path, id: &str, host: &str, pid: u32, expires_in: f64) {
    let me = Worker::here(Duration::from_secs(1));
    let now = now_unix();
    let rec = ClaimRecord {
        worker: format!("{host}-{pid}-0"),
        host: host.into(),
        pid,
        pid_ns: me.pid_ns,
        started_unix: now - 100.0,
        renewed_unix: now - 1.0,
        lease_expires_unix: now + expires_in,
        released: false,
        failure: None,
    };
    let d = root.join("claims").join(id);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("1.claim"), serde_json::to_vec(&rec).unwrap()).unwrap();
}

/// A pid that no process has: one that just exited (and was reaped).
fn dead_pid() -> u32 {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lmech"))
        .arg("--version")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.wait().unwrap();
    child.id()
}

/// Leases: one kept renewed past its length is not taken over, and the
/// holder keeps it; one left to expire is, and its old holder learns it
/// lost it. A claim by another host counts until its lease expires; one by
/// a process of this host that is gone is free at once.
#[test]
fn a_lease_that_expires_is_taken_over_and_one_renewed_is_not() {
    let dir = temp_dir("claim-lease");
    let (a, b) = (claims_of(&dir, 1500), claims_of(&dir, 1500));
    let held = a.try_claim("r").unwrap().expect("a free run");
    assert!(b.try_claim("r").unwrap().is_none());
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        std::thread::sleep(Duration::from_millis(250));
        assert!(a.renew(&held).unwrap(), "the holder lost a renewed claim");
        assert!(
            b.try_claim("r").unwrap().is_none(),
            "a renewed claim was taken"
        );
    }
    std::thread::sleep(Duration::from_millis(1700));
    let taken = b.try_claim("r").unwrap();
    assert!(taken.is_some(), "an expired claim was not taken over");
    assert!(!a.holds(&held).unwrap());
    assert!(
        !a.renew(&held).unwrap(),
        "the old holder renewed a lost claim"
    );
    assert!(b.holds(&taken.unwrap()).unwrap());

    let here = Worker::here(Duration::from_secs(1)).host;
    foreign_claim(&dir, "elsewhere-live", "node-7", 4242, 600.0);
    assert!(b.try_claim("elsewhere-live").unwrap().is_none());
    foreign_claim(&dir, "elsewhere-expired", "node-7", 4242, -1.0);
    assert!(b.try_claim("elsewhere-expired").unwrap().is_some());
    foreign_claim(&dir, "here-dead", &here, dead_pid(), 600.0);
    assert!(b.try_claim("here-dead").unwrap().is_some());
    foreign_claim(&dir, "here-alive", &here, std::process::id(), 600.0);
    assert!(b.try_claim("here-alive").unwrap().is_none());
}

const STRESS_SWEEP: &str = r#"
name = "stress"
max_ensemble = 2
[base]
dtype = "f64"
[base.model]
width = 16
[base.data]
n_train = 200
seed = 0
[base.train]
steps = 800
batch_size = 50
log_every = 50
checkpoint_every = 80
checkpoint_at = [0, 400, 800]
[axes]
"optim.lr" = [0.05, 0.1, 0.2]
seed = [0, 1, 2, 3, 4, 5, 6, 7]
"#;

/// A worker slot of the stress test: its process, when to kill it, and how
/// many more times it will be killed.
struct Slot {
    child: Option<(Child, Option<Instant>)>,
    log: PathBuf,
    kills_left: u32,
    started: usize,
    idle_until: Instant,
}

/// A small deterministic generator for kill times.
fn next_ms(state: &mut u64, lo: u64, hi: u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    lo + (*state >> 33) % (hi - lo)
}

fn spawn_worker(spec: &Path, out: &Path, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_lmech"))
        .args(["--threads", "1", "sweep", spec.to_str().unwrap(), "--out"])
        .arg(out)
        .args(["--device", "cpu"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Runs 4 workers on `out`, killing each with SIGKILL at random moments
/// (three times per slot) and starting it again, until the grid is
/// committed; returns the workers' logs and how many kills there were.
fn run_killed_workers(spec: &Path, out: &Path, logs: &Path, total: usize) -> (Vec<String>, u32) {
    let mut rng = 0x5eed_u64;
    let mut slots: Vec<Slot> = (0..4)
        .map(|_| Slot {
            child: None,
            log: PathBuf::new(),
            kills_left: 3,
            started: 0,
            idle_until: Instant::now(),
        })
        .collect();
    let (mut kills, mut log_paths) = (0, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = names(&out.join("runs")).len() == total;
        for (k, s) in slots.iter_mut().enumerate() {
            if let Some((child, kill_at)) = &mut s.child {
                if let Some(status) = child.try_wait().unwrap() {
                    let log = std::fs::read_to_string(&s.log).unwrap_or_default();
                    assert!(status.success(), "a worker failed:\n{log}");
                    s.child = None;
                    // Nothing to take for now: look again in a while.
                    s.idle_until = Instant::now() + Duration::from_millis(300);
                } else if kill_at.is_some_and(|t| Instant::now() >= t) {
                    child.kill().unwrap();
                    child.wait().unwrap();
                    kills += 1;
                    s.child = None;
                }
            }
            if s.child.is_none() && !done && Instant::now() >= s.idle_until {
                s.log = logs.join(format!("worker{k}-{}.log", s.started));
                s.started += 1;
                let kill_at = (s.kills_left > 0).then(|| {
                    s.kills_left -= 1;
                    Instant::now() + Duration::from_millis(next_ms(&mut rng, 50, 700))
                });
                s.child = Some((spawn_worker(spec, out, &s.log), kill_at));
                log_paths.push(s.log.clone());
            }
        }
        if done && slots.iter().all(|s| s.child.is_none()) {
            break;
        }
        assert!(Instant::now() < deadline, "the grid was not done in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    let logs = log_paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    (logs, kills)
}

/// 4 workers share one store of 24 runs, each killed with SIGKILL at
/// random moments and started again until the grid is done: every run is
/// committed once and passes `sweep check`, a worker started on the done
/// grid leaves nothing in `work/` or `claims/`, no run was trained to
/// completion twice (by the workers' logs), and every run's metrics equal
/// those of the same run trained alone, to the bit (f64).
#[test]
fn workers_killed_at_random_finish_the_grid_with_every_run_once() {
    let dir = temp_dir("sweep-stress");
    let spec = write(&dir, "s.toml", STRESS_SWEEP);
    let (out, logs) = (dir.join("out"), dir.join("logs"));
    std::fs::create_dir_all(&logs).unwrap();
    let all = grid_ids(&spec);
    assert_eq!(all.len(), 24);
    let (logs, kills) = run_killed_workers(&spec, &out, &logs, all.len());
    // The grid takes seconds, the kills come within a second or so.
    assert!(kills >= 4, "only {kills} kills: the grid was done before");
    assert_eq!(names(&out.join("runs")), all);
    assert!(!out.join("bad").exists());
    // A kill between a commit's rename and its clearing of `work/<id>/`
    // leaves that behind for the next worker to tidy: here, one started on
    // the done grid.
    let last = sweep_ok(&spec, &out, &[]);
    assert!(
        last.contains("0 finished, 0 diverged, 24 done before"),
        "{last}"
    );
    for sub in ["work", "claims"] {
        let left = tree(&out.join(sub));
        assert!(left.is_empty(), "left in {sub}/: {left:?}");
    }
    let check = lmech(&["sweep", "check", out.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(text(&check).contains("24 of 24 committed runs verified"));
    let mut trained: BTreeMap<&str, usize> = BTreeMap::new();
    for log in &logs {
        assert!(!log.contains("failed:"), "{log}");
        for line in log.lines() {
            let done = line.split("] ").nth(1).and_then(|rest| {
                let (id, what) = rest.split_once(": ")?;
                (what == "finished" || what.starts_with("diverged")).then_some(id)
            });
            if let Some(id) = done {
                *trained
                    .entry(all.get(id).map(String::as_str).unwrap())
                    .or_default() += 1;
            }
        }
    }
    let adopted = logs
        .iter()
        .map(|l| {
            l.matches("committed (trained by an earlier worker)")
                .count()
        })
        .sum::<usize>();
    let continued = logs
        .iter()
        .map(|l| l.matches("(left by an earlier worker)").count())
        .sum::<usize>();
    println!(
        "{kills} kills over {} worker starts; {} runs trained to completion, {continued} \
         continued from a killed worker's restart point, {adopted} finished by a killed \
         worker and committed by another",
        logs.len(),
        trained.values().sum::<usize>()
    );
    let twice: Vec<_> = trained.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "trained to completion twice: {twice:?}");
    for id in &all {
        let run = out.join("runs").join(id);
        let scratch = dir.join("alone").join(id);
        let alone = metrics_alone(&run, scratch.clone());
        assert_eq!(metrics(&run), alone, "{id}");
        // Step checkpoints from before a takeover's restart point survive it.
        for step in [0, 400, 800] {
            let name = format!("checkpoints/step_{step}.safetensors");
            let committed = std::fs::read(run.join(&name));
            assert!(committed.is_ok(), "{id}: {name} missing");
            assert_eq!(
                committed.unwrap(),
                std::fs::read(scratch.join(&name)).unwrap(),
                "{id}: {name}"
            );
        }
    }
    let st = lmech(&["sweep", "status", out.to_str().unwrap(), "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["finished"], 24, "{st}");
    assert_eq!(st["claimed"].as_array().map(Vec::len), Some(0), "{st}");
}

/// What a worker killed between a commit's rename and its clearing leaves
/// (`work/<id>/` and a dead process's claim beside a committed run) is
/// removed by the next worker; a committed run a live worker holds (under
/// `--resume` it may be about to train it again) is left alone.
#[test]
fn a_commit_killed_halfway_is_tidied_by_the_next_worker() {
    let dir = temp_dir("sweep-tidy");
    let spec = write(&dir, "s.toml", SMALL_SWEEP);
    let out = dir.join("out");
    sweep_ok(&spec, &out, &[]);
    let ids: Vec<String> = grid_ids(&spec).into_iter().collect();
    let here = Worker::here(Duration::from_secs(1)).host;
    let (dead, live) = (&ids[0], &ids[1]);
    for (id, pid) in [(dead, dead_pid()), (live, std::process::id())] {
        foreign_claim(&out, id, &here, pid, 600.0);
        let scratch = out.join("work").join(id).join("someone");
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::write(scratch.join("metrics.jsonl"), "{}\n").unwrap();
    }
    sweep_ok(&spec, &out, &[]);
    assert_eq!(names(&out.join("work")), BTreeSet::from([live.clone()]));
    assert_eq!(names(&out.join("claims")), BTreeSet::from([live.clone()]));
    assert_eq!(names(&out.join("runs")).len(), ids.len());
}

/// A worker stopped (SIGSTOP) past its lease loses its run to another
/// worker, which finishes the grid; continued, the first one stops that run
/// without committing it, so every run is committed once and verifies.
#[test]
fn a_worker_stalled_past_its_lease_commits_nothing_it_lost() {
    let dir = temp_dir("sweep-stall");
    let spec = write(
        &dir,
        "s.toml",
        &STRESS_SWEEP
            .replace("seed = [0, 1, 2, 3, 4, 5, 6, 7]", "seed = [0, 1]")
            .replace("max_ensemble = 2", "max_ensemble = 1")
            .replace("steps = 800", "steps = 4000"),
    );
    let out = dir.join("out");
    let first = Command::new(env!("CARGO_BIN_EXE_lmech"))
        .args(["--threads", "1", "sweep", spec.to_str().unwrap(), "--out"])
        .arg(&out)
        .args(["--device", "cpu", "--lease-seconds", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let restart_point = || {
        names(&out.join("work")).iter().any(|id| {
            names(&out.join("work").join(id)).iter().any(|w| {
                out.join("work")
                    .join(id)
                    .join(w)
                    .join("resume.safetensors")
                    .exists()
            })
        })
    };
    while !restart_point() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no restart point"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let signal = |sig: &str| {
        let pid = first.id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_millis(1500));
    let second = sweep_ok(&spec, &out, &[]);
    signal("-CONT");
    let first_out = first.wait_with_output().unwrap();
    let said = text(&first_out);
    assert!(!first_out.status.success(), "{said}");
    assert!(said.contains("without committing it"), "{said}");
    assert!(!said.contains(": finished"), "{said}");
    assert!(second.contains("6 runs: "), "{second}");
    assert_eq!(names(&out.join("runs")), grid_ids(&spec));
    let check = lmech(&["sweep", "check", out.to_str().unwrap()]);
    assert!(text(&check).contains("6 of 6 committed runs verified"));
}

const SMALL_SWEEP: &str = r#"
name = "small"
[base]
dtype = "f64"
[base.model]
width = 8
[base.data]
n_train = 100
seed = 0
[base.train]
steps = 20
log_every = 5
[axes]
"optim.lr" = [0.05, 0.1]
seed = [0, 1]
"#;

/// Cuts a file to half its length.
fn truncate_half(path: &Path) -> u64 {
    let len = std::fs::metadata(path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len / 2).unwrap();
    len / 2
}

/// A committed run whose metrics were cut short and one whose checkpoint
/// was: `check` names both and fails, `report` reports the other two and
/// names them, and `--resume` trains them again, setting the bad copies
/// aside untouched.
#[test]
fn bad_committed_runs_are_named_reported_around_and_trained_again() {
    let dir = temp_dir("sweep-bad");
    let spec = write(&dir, "s.toml", SMALL_SWEEP);
    let out = dir.join("out");
    sweep_ok(&spec, &out, &[]);
    let ids: Vec<String> = grid_ids(&spec).into_iter().collect();
    let (cut_metrics, cut_ckpt) = (&ids[0], &ids[1]);
    let runs = out.join("runs");
    let before = metrics(&runs.join(cut_metrics));
    let metrics_len = truncate_half(&runs.join(cut_metrics).join("metrics.jsonl"));
    let ckpt_len = truncate_half(&runs.join(cut_ckpt).join("model.safetensors"));

    let check = lmech(&["sweep", "check", out.to_str().unwrap()]);
    let said = text(&check);
    assert!(!check.status.success(), "{said}");
    assert!(said.contains("2 of 4 committed runs verified"), "{said}");
    for id in [cut_metrics, cut_ckpt] {
        assert!(said.contains(&format!("bad run {id}: ")), "{said}");
    }

    let rep = lmech(&["sweep", "report", out.to_str().unwrap()]);
    let said = text(&rep);
    assert!(rep.status.success(), "{said}");
    assert!(said.contains("report: 2 runs"), "{said}");
    for id in [cut_metrics, cut_ckpt] {
        assert!(said.contains(&format!("skipped run {id}: ")), "{said}");
    }
    assert!(!said.contains("error"), "{said}");
    let table = std::fs::read_to_string(out.join("report.csv")).unwrap();
    assert_eq!(table.lines().count(), 3);

    // Without --resume a committed run is trusted.
    let again = sweep_ok(&spec, &out, &[]);
    assert!(again.contains("4 runs: 0 finished"), "{again}");
    let again = sweep_ok(&spec, &out, &["--resume"]);
    assert!(
        again.contains("4 runs: 2 finished, 0 diverged, 2 done before"),
        "{again}"
    );
    let check = lmech(&["sweep", "check", out.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
    assert_eq!(metrics(&runs.join(cut_metrics)), before);
    let bad = names(&out.join("bad"));
    assert_eq!(bad.len(), 2, "{bad:?}");
    for (id, file, len) in [
        (cut_metrics, "metrics.jsonl", metrics_len),
        (cut_ckpt, "model.safetensors", ckpt_len),
    ] {
        let kept = bad
            .iter()
            .find(|b| b.starts_with(&format!("{id}-")))
            .unwrap();
        let kept = out.join("bad").join(kept).join(file);
        assert_eq!(std::fs::metadata(kept).unwrap().len(), len);
    }
}

#[test]
fn step_checkpoints_are_sealed_and_checked_with_the_run() {
    let dir = temp_dir("sweep-steps");
    let with_steps = SMALL_SWEEP.replace("log_every = 5", "log_every = 5\ncheckpoint_at = [0, 20]");
    let spec = write(&dir, "s.toml", &with_steps);
    let out = dir.join("out");
    sweep_ok(&spec, &out, &[]);
    let id = grid_ids(&spec).into_iter().next().unwrap();
    let run = out.join("runs").join(&id);
    let sealed = std::fs::read_to_string(run.join("verified.json")).unwrap();
    assert!(
        sealed.contains("checkpoints/step_0.safetensors"),
        "{sealed}"
    );
    let check = lmech(&["sweep", "check", out.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
    truncate_half(&run.join("checkpoints/step_0.safetensors"));
    let check = lmech(&["sweep", "check", out.to_str().unwrap()]);
    let said = text(&check);
    assert!(!check.status.success(), "{said}");
    assert!(
        said.contains(&format!("bad run {id}: ")) && said.contains("step_0"),
        "{said}"
    );
}

/// A tmpfs mounted for a test, unmounted when it ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(text(&o).trim().to_string());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The disk fills up while the sweep trains and commits: the worker says
/// so and fails, every committed run is whole and verified, and once there
/// is room again the sweep finishes.
#[test]
fn a_full_disk_stops_the_sweep_with_nothing_half_committed() {
    let dir = temp_dir("sweep-full");
    let spec = write(
        &dir,
        "s.toml",
        &SMALL_SWEEP
            .replace("seed = [0, 1]", "seed = [0, 1, 2, 3, 4, 5]")
            .replace("[base]", "max_ensemble = 1\n[base]"),
    );
    let out = dir.join("out");
    let disk = match Tmpfs::mount(&out, "160k") {
        Ok(t) => t,
        Err(why) => {
            println!("skipped: cannot mount a small tmpfs to fill up ({why})");
            return;
        }
    };
    let o = sweep(&spec, &out, &[]);
    let said = text(&o);
    assert!(!o.status.success(), "the sweep fit in the tmpfs: {said}");
    assert!(said.contains("No space left on device"), "{said}");
    let committed = names(&out.join("runs"));
    assert!(committed.len() < 12, "{said}");
    let check = lmech(&["sweep", "check", out.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check));
    for id in &committed {
        assert!(out.join("runs").join(id).join("verified.json").is_file());
    }
    disk.resize("64m");
    let said = sweep_ok(&spec, &out, &[]);
    assert!(said.contains("12 runs:"), "{said}");
    assert_eq!(names(&out.join("runs")), grid_ids(&spec));
    let check = lmech(&["sweep", "check", out.to_str().unwrap()]);
    assert!(text(&check).contains("12 of 12 committed runs verified"));
}

/// `sweep status` counts done, claimed (with the holder), failed (with the
/// reason) and pending runs, as JSON and as text.
#[test]
fn status_counts_done_claimed_failed_and_pending_runs() {
    let dir = temp_dir("sweep-status");
    let spec = write(&dir, "s.toml", SMALL_SWEEP);
    let out = dir.join("out");
    sweep_ok(&spec, &out, &["--shard", "0/4"]);
    let ids: Vec<String> = grid_ids(&spec)
        .into_iter()
        .filter(|id| !out.join("runs").join(id).exists())
        .collect();
    assert_eq!(ids.len(), 3);
    foreign_claim(&out, &ids[0], "node-7", 4242, 600.0);
    // A claim released with a failure, as a worker that failed leaves it.
    let claims = claims_of(&out, 60_000);
    let c = claims.try_claim(&ids[1]).unwrap().unwrap();
    assert!(claims.release(&c, "disk full").unwrap());
    let st = lmech(&["sweep", "status", out.to_str().unwrap(), "--json"]);
    assert!(st.status.success(), "{}", text(&st));
    let json: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(json["total"], 4);
    assert_eq!(json["finished"], 1);
    assert_eq!(json["claimed"][0]["id"], ids[0].as_str());
    assert_eq!(json["claimed"][0]["host"], "node-7");
    assert!(json["claimed"][0]["lease_left_s"].as_f64().unwrap() > 500.0);
    assert_eq!(json["failed"][0]["error"], "disk full");
    assert_eq!(json["pending"], 1);
    let st = lmech(&["sweep", "status", out.to_str().unwrap()]);
    let said = text(&st);
    assert!(said.contains("claimed  1"), "{said}");
    assert!(said.contains("by node-7 pid 4242"), "{said}");
    assert!(said.contains("disk full"), "{said}");
    // A worker takes the failed and the pending run, not the held one.
    let again = sweep_ok(&spec, &out, &[]);
    assert!(
        again.contains("2 finished, 0 diverged, 1 done before, 1 in progress elsewhere"),
        "{again}"
    );
}

#[test]
fn a_cancelled_sweep_commits_nothing_lets_its_claims_go_and_the_next_worker_finishes_it() {
    let dir = temp_dir("sweep-cancel");
    let spec_path = write(
        &dir,
        "s.toml",
        &STRESS_SWEEP
            .replace("seed = [0, 1, 2, 3, 4, 5, 6, 7]", "seed = [0, 1]")
            .replace("\"optim.lr\" = [0.05, 0.1, 0.2]", "\"optim.lr\" = [0.1]")
            .replace("max_ensemble = 2", "max_ensemble = 1")
            .replace("steps = 800", "steps = 4000"),
    );
    let out = dir.join("out");
    let spec = SweepSpec::load(&spec_path).unwrap();
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opts = lmech::sweep::SweepOptions {
        out: out.clone(),
        resume: false,
        shard: lmech::sweep::Shard::WHOLE,
        devices: vec![Device::Cpu],
        jobs: 1,
        max_ensemble: None,
        progress: false,
        lease: lmech::sweep::claim::DEFAULT_LEASE,
        cancel: Some(cancel.clone()),
    };
    let work = out.join("work");
    let restart_point = || {
        names(&work).iter().any(|id| {
            names(&work.join(id))
                .iter()
                .any(|w| work.join(id).join(w).join("resume.safetensors").exists())
        })
    };
    let ended = std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            while !restart_point() && start.elapsed() < Duration::from_secs(120) {
                std::thread::sleep(Duration::from_millis(5));
            }
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        lmech::sweep::run_sweep(&spec, &opts)
    });
    let err = ended.expect_err("a cancelled sweep says so").to_string();
    assert!(err.contains("interrupted"), "{err}");
    assert!(restart_point());
    assert!(names(&out.join("runs")).is_empty());
    let mut claims = 0;
    for id in names(&out.join("claims")) {
        for c in names(&out.join("claims").join(&id)) {
            let text = std::fs::read_to_string(out.join("claims").join(&id).join(c)).unwrap();
            let rec: ClaimRecord = serde_json::from_str(&text).unwrap();
            assert!(rec.released && rec.failure.is_none(), "{text}");
            claims += 1;
        }
    }
    assert!(claims > 0);
    // Released, not left to expire: the next worker takes the runs at once.
    let next = sweep_ok(&spec_path, &out, &[]);
    assert!(next.contains("2 runs: "), "{next}");
    assert_eq!(names(&out.join("runs")), grid_ids(&spec_path));
}
