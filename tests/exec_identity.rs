//! After admission mpgate is replaced by the workload: same PID, argv byte for byte, environment
//! passed through plus the verdict, no descriptor of mpgate's, the workload's exit status and signals.

use crate::hourly::{gate_as, with_workload};
use crate::support::{scratch, workload_bin, Report, Run};
use mpgate_emulator::{Emulator, World};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::time::{Duration, Instant};

#[test]
fn workload_keeps_the_pid_argv_and_environment() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let odd = OsString::from_vec(vec![b'a', 0xff, 0xfe, b'z']);
    let run = gate_as(&emu, "ecs-task", dir.path())
        .env("WORKLOAD_SETTING", "kept")
        .env(OsString::from("ODD_BYTES"), odd.clone());
    let out = run
        .arg("--")
        .arg(workload_bin())
        .arg("report")
        .arg(dir.path().join("report.json"))
        .arg("0")
        .arg("--flag-for-workload")
        .arg(odd.clone())
        .arg("")
        .run()
        .check();
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.pid, out.pid, "the workload runs in mpgate's process");
    assert_eq!(report.ppid, std::process::id(), "and under mpgate's parent");
    let expected_argv: Vec<Vec<u8>> = [
        workload_bin().into_os_string(),
        "report".into(),
        dir.path().join("report.json").into_os_string(),
        "0".into(),
        "--flag-for-workload".into(),
        odd.clone(),
        "".into(),
    ]
    .iter()
    .map(|a| a.as_bytes().to_vec())
    .collect();
    assert_eq!(report.argv, expected_argv);
    assert_eq!(report.var("WORKLOAD_SETTING").as_deref(), Some("kept"));
    let odd_seen = report.env.iter().find(|(k, _)| k == b"ODD_BYTES").map(|(_, v)| v.clone());
    assert_eq!(odd_seen.as_deref(), Some(odd.as_bytes()));
    // Everything the gate was given is passed through, plus exactly the documented verdict variables.
    let given = emu.workload_env("ecs-task", dir.path()).expect("env");
    for (k, v) in given {
        assert_eq!(report.var(&k).as_deref(), Some(v.as_str()), "{k} passed through");
    }
    let added: Vec<String> = report
        .env
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .filter(|k| k.starts_with("MPGATE_") && !["MPGATE_TERMINATION_LOG", "MPGATE_DEADLINE"].contains(&k.as_str()))
        .collect();
    let mut added_sorted = added.clone();
    added_sorted.sort();
    let mut documented: Vec<String> = mpgate::exec::OUTPUT_VARS.iter().map(|s| s.to_string()).collect();
    documented.sort();
    assert_eq!(added_sorted, documented);
}

#[test]
fn no_descriptor_of_mpgate_survives_into_the_workload() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let direct = Run::bin(workload_bin()).arg("report").arg(dir.path().join("direct.json")).run();
    assert_eq!(direct.code(), Some(0));
    let baseline = Report::read(&dir.path().join("direct.json")).fds;
    let out = with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path()).run().check();
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    assert_eq!(Report::read(&dir.path().join("report.json")).fds, baseline);
}

#[test]
fn the_workload_exit_status_is_the_exit_status() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    for status in [0, 7, 255] {
        let dir = scratch();
        gate_as(&emu, "ecs-task", dir.path())
            .arg("--")
            .arg(workload_bin())
            .arg("exit")
            .arg(status.to_string())
            .run()
            .expect_status(status)
            .check();
    }
}

#[test]
fn missing_program_is_127_and_not_executable_is_126() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    gate_as(&emu, "ecs-task", dir.path())
        .arg("--")
        .arg("definitely-not-a-program-mpgate")
        .run()
        .expect_status(127)
        .expect_stderr_contains(
            "mpgate: exec-not-found: cannot execute \"definitely-not-a-program-mpgate\": not found in PATH",
        )
        .check();
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, "not a program").expect("write");
    gate_as(&emu, "ecs-task", dir.path())
        .arg("--")
        .arg(&plain)
        .run()
        .expect_status(126)
        .expect_stderr_contains("permission denied")
        .check();
}

#[test]
fn path_lookup_works_like_execvp() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let bin_dir = workload_bin().parent().expect("dir").to_path_buf();
    gate_as(&emu, "ecs-task", dir.path())
        .env("PATH", format!("/nonexistent:{}", bin_dir.display()))
        .arg("--")
        .arg("mpgate-test-workload")
        .arg("exit")
        .arg("7")
        .run()
        .expect_status(7)
        .check();
}

#[test]
fn sigterm_sent_to_the_pid_reaches_the_workload() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'echo got-term > {r}.term; exit 42' TERM; echo $$ > {r}; while :; do sleep 0.05; done",
        r = ready.display()
    );
    let env = emu.workload_env("ecs-task", dir.path()).expect("env");
    let mut cmd = std::process::Command::new(crate::support::gate_bin());
    cmd.env_clear()
        .envs(env)
        .env("PATH", "/usr/bin:/bin")
        .args(["exec", "-q", "--", "sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = crate::support::Spawned::spawn(&mut cmd, "the gate (exec)");
    let started = Instant::now();
    // `echo $$ > ready` creates the file before it writes the pid: wait for the pid, not the file.
    while std::fs::metadata(&ready).map_or(true, |m| m.len() == 0) {
        assert!(started.elapsed() < Duration::from_secs(30), "workload never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid: u32 = std::fs::read_to_string(&ready).expect("pid").trim().parse().expect("pid number");
    assert_eq!(pid, child.id(), "the shell runs as mpgate's PID");
    let kill = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill");
    assert!(kill.success());
    assert_eq!(child.wait_exit(Duration::from_secs(10)), Some(42), "the workload's trap ran");
}
