//! Test support: a fluent builder that runs the real `mpgate` binary from an emptied environment and
//! reports every mismatch at once, plus helpers to read what the test workload received.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The static test-flavour gate (demo identity).
pub fn gate_bin() -> PathBuf {
    dist_dir().join("mpgate-test")
}

/// The directory of static gates the tests run (scripts/build-gates lists them). `MPGATE_DIST` names
/// one built beforehand (scripts/test builds it first); without it, the first test that needs a gate
/// runs scripts/build-gates once for the whole test binary, into `$CARGO_TARGET_DIR/dist` (or
/// `target/dist`), so a plain `cargo test` needs no other step.
pub fn dist_dir() -> PathBuf {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        #[allow(clippy::disallowed_methods)] // the test harness is configured by its environment
        let given = std::env::var_os("MPGATE_DIST").map(PathBuf::from);
        let dir = match given {
            Some(dir) => dir,
            None => build_gates(&[]),
        };
        for name in DIST_FILES {
            assert!(
                dir.join(name).is_file(),
                "{} lacks {name}: build the gates with scripts/build-gates (scripts/test does) or unset MPGATE_DIST",
                dir.display()
            );
        }
        dir
    })
    .clone()
}

/// What scripts/build-gates puts in the dist directory (the aarch64 builds only with --aarch64).
const DIST_FILES: [&str; 6] =
    ["mpgate", "mpgate-contract", "mpgate-test", "mpgate-test-metered", "mpgate-test-contract", "mpgate-test-workload"];

/// The aarch64 gates (scripts/build-gates --aarch64): under `MPGATE_DIST` when it is given, otherwise
/// cross-built on first use.
pub fn aarch64_dir() -> PathBuf {
    static AARCH64: OnceLock<PathBuf> = OnceLock::new();
    AARCH64
        .get_or_init(|| {
            let dist = dist_dir();
            #[allow(clippy::disallowed_methods)] // the test harness is configured by its environment
            if std::env::var_os("MPGATE_DIST").is_none() {
                build_gates(&["--aarch64"]);
            }
            dist.join("aarch64")
        })
        .clone()
}

/// Run scripts/build-gates with `args`; its output goes to this process's stderr (not captured by the
/// harness), so a first run shows the build's progress.
fn build_gates(args: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    #[allow(clippy::disallowed_methods)] // the test harness is configured by its environment
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    eprintln!("building the static gates once for this run: scripts/build-gates (set MPGATE_DIST to skip)");
    let status = Command::new(root.join("scripts/build-gates"))
        .args(args)
        .current_dir(root)
        .stdout(std::process::Stdio::inherit())
        .status()
        .unwrap_or_else(|e| panic!("cannot run scripts/build-gates: {e}"));
    assert!(status.success(), "scripts/build-gates failed ({status}); its output is above");
    let target = if target.is_absolute() { target } else { root.join(target) };
    target.join("dist")
}

/// The static test workload.
pub fn workload_bin() -> PathBuf {
    dist_dir().join("mpgate-test-workload")
}

/// Poll `done` until it holds; after `limit`, fail saying that `what` did not happen.
pub fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what} did not happen within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until `path` holds one whole line and return it without the newline. A workload writing
/// `echo $$ > path` creates the file before the text is in it, so existence alone is not enough.
pub fn wait_for_line(path: &Path, limit: Duration) -> String {
    let mut line = String::new();
    wait_until(&format!("a line in {}", path.display()), limit, || match std::fs::read_to_string(path) {
        Ok(text) if text.ends_with('\n') => {
            line = text.trim_end_matches('\n').to_string();
            true
        }
        _ => false,
    });
    line
}

/// Whether `pid` is a live process (a zombie has finished: it only waits to be reaped).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_string)))
        .is_some_and(|state| state != "Z" && state != "X")
}

/// The seed of a randomised test: `MPGATE_TEST_SEED` when set (to repeat a run), otherwise drawn from
/// the clock. Printed either way, so a failing run's output says how to repeat it.
pub fn test_seed(test: &str) -> u64 {
    #[allow(clippy::disallowed_methods)] // the test harness is configured by its environment
    let given = std::env::var("MPGATE_TEST_SEED").ok();
    let seed = match given {
        Some(s) => s.trim().parse().unwrap_or_else(|e| panic!("MPGATE_TEST_SEED={s:?} is not a u64: {e}")),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 ^ u64::from(std::process::id())),
    };
    println!("{test}: seed {seed} (MPGATE_TEST_SEED={seed} repeats this run)");
    seed
}

/// A small deterministic generator (PCG-style LCG step, high bits out) for the randomised tests.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// A scratch directory that lives as long as the value.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// One run of a binary, built fluently.
pub struct Run {
    bin: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl Run {
    /// The test-flavour gate.
    pub fn gate() -> Self {
        Self::bin(gate_bin())
    }

    /// Any binary, started with an empty environment.
    pub fn bin(bin: PathBuf) -> Self {
        Run { bin, args: Vec::new(), env: Vec::new(), timeout: Duration::from_secs(60) }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, it: I) -> Self {
        self.args.extend(it.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        let k = k.into();
        self.env.retain(|(old, _)| *old != k);
        self.env.push((k, v.into()));
        self
    }

    pub fn envs(mut self, pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        for (k, v) in pairs {
            self = self.env(k, v);
        }
        self
    }

    pub fn without_env(mut self, k: &str) -> Self {
        self.env.retain(|(old, _)| old != k);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Run to completion (bounded by the timeout, after which the child is killed and the test fails).
    pub fn run(self) -> Outcome {
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args).env_clear().envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let started = Instant::now();
        // Guarded: on a timeout the panic drops it, which kills and reaps the binary and its workload.
        let mut child = Spawned::spawn(&mut cmd, &self.bin.display().to_string());
        let pid = child.id();
        while child.try_wait().is_none() {
            assert!(
                started.elapsed() <= self.timeout,
                "{} did not finish within {:?}",
                self.bin.display(),
                self.timeout
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let output: Output = child.into_child().wait_with_output().expect("output");
        Outcome { output, pid, elapsed: started.elapsed(), problems: Vec::new() }
    }
}

/// A process left running in the background (a gate as supervisor, a gate whose workload waits for a
/// signal). Dropping it, on the test's success or on a failed assert, SIGKILLs what is still running of
/// it — its descendants first, so that no workload is orphaned, then the process — and reaps it, so a
/// failing test leaves no process behind.
pub struct Spawned {
    child: Option<Child>,
    what: String,
}

impl Spawned {
    /// Start `cmd`; `what` names it in failure messages.
    pub fn spawn(cmd: &mut Command, what: &str) -> Spawned {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Spawned { child: Some(child), what: what.to_string() }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until into_child")
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("child present until into_child").id()
    }

    /// Send `signal` to the process (not to its descendants).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap_or_else(|e| panic!("{signal} to {}: {e}", self.what));
    }

    pub fn term(&self) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
    }

    /// SIGKILL the process alone (a crash: its workload is left as an orphan) and reap it.
    pub fn kill(&mut self) {
        let child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The exit status if it has exited (reaping it), None while it runs.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child().try_wait().expect("wait")
    }

    /// Wait at most `limit` for the process to exit; its exit code (None when killed by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return status.code();
            }
            assert!(started.elapsed() < limit, "{} did not exit within {limit:?}", self.what);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait at most `limit` for the process to exit, then its outcome (its output, if piped).
    pub fn outcome(mut self, limit: Duration) -> Outcome {
        let started = Instant::now();
        let pid = self.id();
        self.wait_exit(limit);
        let output = self.into_child().wait_with_output().expect("output");
        Outcome { output, pid, elapsed: started.elapsed(), problems: Vec::new() }
    }

    /// The live descendants of the process (e.g. the gate under `unshare --fork`).
    pub fn descendants(&self) -> Vec<i32> {
        descendants(self.id())
    }

    /// The exited child, for its piped output; the guard is disarmed.
    fn into_child(mut self) -> Child {
        self.child.take().expect("child present until into_child")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let Some(child) = self.child.as_mut() else { return };
        if matches!(child.try_wait(), Ok(None)) {
            // Bounded: a few passes catch what was forked while the previous pass was killing.
            for _ in 0..3 {
                for pid in descendants(child.id()) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// Every live descendant of `root`, from /proc (each process's parent is field 4 of /proc/<pid>/stat,
/// after the parenthesised command name, which may itself hold spaces and parentheses).
fn descendants(root: u32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root as i32];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        i += 1;
    }
    found.remove(0);
    found
}

/// What a run did; `expect_*` calls collect mismatches, `check` reports them all.
pub struct Outcome {
    pub output: Output,
    pub pid: u32,
    pub elapsed: Duration,
    problems: Vec<String>,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// The last stderr line (the refusal line).
    pub fn last_line(&self) -> String {
        self.stderr().lines().last().unwrap_or("").to_string()
    }

    pub fn expect_status(mut self, code: i32) -> Self {
        if self.code() != Some(code) {
            self.problems.push(format!("exit status {:?}, expected {code}", self.output.status));
        }
        self
    }

    pub fn expect_stderr_contains(mut self, needle: &str) -> Self {
        if !self.stderr().contains(needle) {
            self.problems.push(format!("stderr lacks {needle:?}"));
        }
        self
    }

    pub fn expect_stderr_lacks(mut self, needle: &str) -> Self {
        if self.stderr().contains(needle) {
            self.problems.push(format!("stderr unexpectedly contains {needle:?}"));
        }
        self
    }

    /// A refusal is exactly one `mpgate: ` line after the optional test-flavour warning, lower case.
    pub fn expect_one_refusal_line(mut self) -> Self {
        let lines: Vec<String> = self
            .stderr()
            .lines()
            .filter(|l| !l.starts_with("mpgate: warning: test flavour"))
            .map(str::to_string)
            .collect();
        if lines.len() != 1 || !lines[0].starts_with("mpgate: ") {
            self.problems.push(format!("expected one `mpgate: ` line on stderr, got {lines:?}"));
        } else if lines[0]["mpgate: ".len()..].starts_with(|c: char| c.is_ascii_uppercase()) {
            self.problems.push(format!("refusal line does not start lower case: {:?}", lines[0]));
        }
        self
    }

    pub fn expect_stdout_empty(mut self) -> Self {
        if !self.output.stdout.is_empty() {
            self.problems.push(format!("stdout not empty: {:?}", self.stdout()));
        }
        self
    }

    /// Panic with every mismatch and the full output.
    pub fn check(self) -> Self {
        if !self.problems.is_empty() {
            panic!(
                "{} problem(s):\n  - {}\n--- stderr ---\n{}--- stdout ---\n{}",
                self.problems.len(),
                self.problems.join("\n  - "),
                self.stderr(),
                self.stdout()
            );
        }
        self
    }
}

/// What the test workload reported about itself.
#[derive(Debug)]
pub struct Report {
    pub pid: u32,
    pub ppid: u32,
    pub argv: Vec<Vec<u8>>,
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    pub fds: Vec<u32>,
}

impl Report {
    pub fn read(path: &Path) -> Report {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("workload report {}: {e}", path.display()));
        let v: serde_json::Value = serde_json::from_str(&text).expect("report json");
        let unhex = |s: &serde_json::Value| -> Vec<u8> {
            let s = s.as_str().expect("hex string");
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
        };
        Report {
            pid: v["pid"].as_u64().expect("pid") as u32,
            ppid: v["ppid"].as_u64().expect("ppid") as u32,
            argv: v["argv_hex"].as_array().expect("argv").iter().map(unhex).collect(),
            env: v["env_hex"].as_array().expect("env").iter().map(|p| (unhex(&p[0]), unhex(&p[1]))).collect(),
            fds: v["fds"].as_array().expect("fds").iter().map(|f| f.as_u64().expect("fd") as u32).collect(),
        }
    }

    pub fn var(&self, key: &str) -> Option<String> {
        self.env.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}
