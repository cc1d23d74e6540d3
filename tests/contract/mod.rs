//! Contract pricing, end to end against the emulator's License Manager, one file per concern: the
//! checkout at start, every refusal class and what the workload receives (`start`); seat hygiene per
//! mode, measured on the emulator's seat ledger (`seats`); Containers Anywhere's license token
//! (`anywhere`); the license's validity (`validity`); the supervisor's re-check while the workload
//! runs (`recheck`); and the forms License Manager's answers may take (`wire`). Runs the test-flavour
//! gate baked with testdata/identity-contract.env (`mpgate-test-contract`): BasicTier or PremiumTier
//! admits, one `Seats` per container.

mod anywhere;
mod recheck;
mod seats;
mod start;
mod validity;
mod wire;

use crate::support::{dist_dir, scratch, wait_for_line, workload_bin, Report, Run, Spawned};
use mpgate_emulator::{Emulator, Fault, Seat, SeatState, World, CONTRACT_LICENSE, CONTRACT_SKU};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The emulator's demo workload that runs on premises with a License Manager license token.
const ON_PREM: &str = "onprem-license";

pub(crate) fn contract_bin() -> PathBuf {
    let bin = dist_dir().join("mpgate-test-contract");
    assert!(bin.is_file(), "{} missing: scripts/test builds it with testdata/identity-contract.env", bin.display());
    bin
}

/// The demo world with the contract license's `Seats` set to `seats`.
pub(crate) fn world_with_seats(seats: i64) -> World {
    let mut world = World::demo();
    let license = world.licenses.iter_mut().find(|l| l.arn == CONTRACT_LICENSE).expect("contract license");
    license.entitlements.iter_mut().find(|e| e.name == "Seats").expect("Seats").max_count = Some(seats);
    world
}

pub(crate) fn gate(emu: &Emulator, workload: &str, dir: &Path) -> Run {
    Run::bin(contract_bin())
        .envs(emu.workload_env(workload, dir).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_TERMINATION_LOG", dir.join("termination-log"))
        .env("MPGATE_ENTITLEMENTS_DIR", dir)
        .env("MPGATE_ALLOW_NOT_PID1", "1")
        .env("MPGATE_DEADLINE", "10s")
}

/// `mpgate supervise -- mpgate-test-workload report dir/report.json` (this build counts seats, so
/// `exec` refuses it).
pub(crate) fn supervise_report(run: Run, dir: &Path) -> Run {
    run.args(["supervise", "-q", "--"]).arg(workload_bin()).arg("report").arg(dir.join("report.json"))
}

pub(crate) fn out_seats(emu: &Emulator) -> Vec<Seat> {
    emu.seats().into_iter().filter(|s| s.state == SeatState::Out).collect()
}

fn spawn_supervised(emu: &Emulator, dir: &Path, script: &str) -> Spawned {
    supervisor(emu, "ecs-task", dir, &["sh", "-c", script])
}

/// `mpgate supervise -q -- workload` in the background, as the emulator's `workload_id`.
pub(crate) fn supervisor(emu: &Emulator, workload_id: &str, dir: &Path, workload: &[&str]) -> Spawned {
    let mut cmd = Command::new(contract_bin());
    cmd.env_clear()
        .envs(emu.workload_env(workload_id, dir).expect("env"))
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_DEADLINE", "10s")
        .env("MPGATE_ENTITLEMENTS_DIR", dir)
        .env("MPGATE_ALLOW_NOT_PID1", "1")
        .args(["supervise", "-q", "--"])
        .args(workload)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    Spawned::spawn(&mut cmd, "the contract supervisor")
}

/// How long a supervisor may take to admit and start its workload, or to exit.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// A workload script that runs `setup` (its signal traps), writes its pid to `dir/running`, then runs
/// `body`. The supervisor writes the hand-over file and holds the seat before it starts the workload,
/// so a line in `running` means all of these are in place.
pub(crate) fn running(dir: &Path, setup: &str, body: &str) -> String {
    format!("{setup}; echo $$ > {}/running; {body}", dir.display())
}

pub(crate) fn wait_exit(child: &mut Spawned) -> Option<i32> {
    child.wait_exit(LIMIT)
}

pub(crate) fn recorded(emu: &Emulator, op: &str) -> Vec<mpgate_emulator::Recorded> {
    emu.requests().into_iter().filter(|r| r.op == op).collect()
}
