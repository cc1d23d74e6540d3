//! The end-to-end scenarios of each pricing model against an emulator in variance mode: every answer
//! in a form drawn from a seed among those AWS's protocols and documents allow (docs/emulator.md,
//! "Variance"). The gate must admit, bill and return seats exactly as with the emulator's one fixed
//! form. The seeds are fixed, so a run is repeatable; `MPGATE_VARIANCE_SEED` adds one. Each scenario
//! prints its seed first, so a failing test's output names it.

use crate::hourly::{with_workload, PAID};
use crate::support::{dist_dir, scratch, wait_until, workload_bin, Report, Run, Spawned};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use mpgate_emulator::{Emulator, Listen, SeatState, World, CONTRACT_LICENSE, METERED};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

/// The seeds CI runs; they draw, between them, both claim casings and every `iat` form.
const SEEDS: [u64; 3] = [1, 1_767_225_600, 0x5eed_cafe_f00d];

fn seeds() -> Vec<u64> {
    #[allow(clippy::disallowed_methods)] // the test harness is configured by its environment
    let extra = std::env::var("MPGATE_VARIANCE_SEED")
        .ok()
        .map(|s| s.trim().parse::<u64>().unwrap_or_else(|e| panic!("MPGATE_VARIANCE_SEED={s:?} is not a u64: {e}")));
    SEEDS.iter().copied().chain(extra).collect()
}

fn varied(seed: u64) -> Emulator {
    println!("variance seed {seed} (MPGATE_VARIANCE_SEED={seed} adds it to a run)");
    Emulator::start_with(World::demo(), Listen { variance: Some(seed), ..Listen::default() }).expect("emulator")
}

fn gate(bin: &str, emu: &Emulator, workload: &str, dir: &Path) -> Run {
    Run::bin(dist_dir().join(bin))
        .envs(emu.workload_env(workload, dir).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_DEADLINE", "20s")
}

/// The claims of the token the workload was handed.
fn claims(report: &Report) -> serde_json::Value {
    let token = report.var("MPGATE_SIGNATURE").expect("signature handed over");
    let payload = token.split('.').nth(1).expect("a JWS");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims")
}

#[test]
fn hourly_starts_are_admitted_under_every_seed() {
    let mut seen = Vec::new();
    for seed in seeds() {
        let emu = varied(seed);
        // The ECS task role (container credential JSON), the same with the region from task metadata
        // v4, IRSA (STS XML), and IRSA with the region from IMDS (its token and region answers).
        for workload in ["ecs-task", "ecs-ec2-old-agent", "eks-irsa", "eks-irsa-no-region"] {
            let dir = scratch();
            let out =
                with_workload(gate("mpgate-test", &emu, workload, dir.path()).arg("exec"), dir.path()).run().check();
            assert_eq!(out.code(), Some(0), "seed {seed}, {workload}: not admitted:\n{}", out.stderr());
            let report = Report::read(&dir.path().join("report.json"));
            assert_eq!(report.var("MPGATE_PRODUCT_CODE").as_deref(), Some(PAID), "seed {seed}, {workload}");
            assert_eq!(report.var("MPGATE_TIER").as_deref(), Some("paid"), "seed {seed}, {workload}");
            let sent = emu.bodies("RegisterUsage");
            let nonce = sent.last().and_then(|b| b["Nonce"].as_str().map(str::to_string));
            assert_eq!(report.var("MPGATE_NONCE"), nonce, "seed {seed}, {workload}: the nonce sent is handed over");
            seen.push(claims(&report));
        }
        assert_eq!(emu.registrations().len(), 4, "seed {seed}: one registration per start");
    }
    // The fixed seeds drew every form the gate must read; a variance that did nothing fails here.
    let has = |k: &str| seen.iter().any(|c| c.get(k).is_some());
    assert!(has("productCode") && has("ProductCode"), "both claim casings: {seen:?}");
    let iat = |c: &serde_json::Value| c["iat"].as_f64().unwrap_or_default();
    assert!(seen.iter().any(|c| iat(c) > 1e11), "an iat in milliseconds: {seen:?}");
    assert!(seen.iter().any(|c| c["iat"].is_f64()), "an iat with a fraction: {seen:?}");
}

fn hour_start_before(hours: u64) -> u64 {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs();
    now - now % 3600 - hours * 3600
}

#[test]
fn metered_supervise_sends_a_closed_hour_exactly_once_under_every_seed() {
    for seed in seeds() {
        let emu = varied(seed);
        let dir = scratch();
        let hour = hour_start_before(2);
        std::fs::create_dir_all(dir.path().join("spool")).expect("spool");
        let usage = format!("{} requests 5\n{} requests 2\n{} gb_processed 9\n", hour + 1, hour + 2, hour + 3);
        std::fs::write(dir.path().join("spool/usage.log"), usage).expect("usage");
        let mut cmd = Command::new(dist_dir().join("mpgate-test-metered"));
        cmd.env_clear()
            .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
            .env("PATH", "/usr/bin:/bin")
            .env("MPGATE_SPOOL_DIR", dir.path().join("spool"))
            .env("MPGATE_ALLOW_NOT_PID1", "1")
            .env("MPGATE_DEADLINE", "20s")
            .env("MPGATE_METER_SPREAD", "0")
            .args(["supervise", "-q", "--", "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr")).expect("stderr"));
        let mut child = Spawned::spawn(&mut cmd, "the metered supervisor");
        let billed = || emu.metering().into_iter().filter(|r| r.op == "MeterUsage").collect::<Vec<_>>();
        wait_until(&format!("seed {seed}: both dimensions of the closed hour billed"), Duration::from_secs(30), || {
            billed().len() >= 2
        });
        child.term();
        let code = child.wait_exit(Duration::from_secs(30));
        let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
        assert_eq!(code, Some(0), "seed {seed}: {stderr}");
        let mut got: Vec<(String, i64, i64)> =
            billed().iter().map(|r| (r.dimension.clone(), r.hour, r.quantity)).collect();
        got.sort();
        let h = i64::try_from(hour).expect("hour");
        assert_eq!(got, vec![("gb_processed".into(), h, 9), ("requests".into(), h, 7)], "seed {seed}: {stderr}");
        assert!(billed().iter().all(|r| r.product_code == METERED));
    }
}

#[test]
fn a_contract_checkout_is_admitted_and_checked_in_under_every_seed() {
    for seed in seeds() {
        let emu = varied(seed);
        let dir = scratch();
        let run = gate("mpgate-test-contract", &emu, "ecs-task", dir.path())
            .env("MPGATE_ENTITLEMENTS_DIR", dir.path())
            .env("MPGATE_ALLOW_NOT_PID1", "1")
            .args(["supervise", "-q", "--"])
            .arg(workload_bin())
            .arg("report")
            .arg(dir.path().join("report.json"));
        let out = run.run().check();
        assert_eq!(out.code(), Some(0), "seed {seed}: not admitted:\n{}", out.stderr());
        let report = Report::read(&dir.path().join("report.json"));
        assert_eq!(report.var("MPGATE_LICENSE_ARN").as_deref(), Some(CONTRACT_LICENSE), "seed {seed}");
        assert_eq!(report.var("MPGATE_ENTITLEMENTS").as_deref(), Some("BasicTier:None,Seats:Count:1"), "seed {seed}");
        let seats = emu.seats();
        assert_eq!(seats.len(), 1, "seed {seed}: one checkout: {seats:?}");
        assert_eq!(seats[0].state, SeatState::CheckedIn, "seed {seed}: the seat is returned");
    }
}
