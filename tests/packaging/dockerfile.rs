//! `Dockerfile.example`, parsed and run. No container registry is reachable here, so the image cannot be
//! built; instead each test assembles the root filesystem a stage would produce (the static test gate
//! for the file that stage copies from the builder, the static test workload for CMD's program) and
//! runs the stage's ENTRYPOINT + CMD as its USER under `unshare --pid --fork --mount` + `chroot` with a
//! fresh /proc, which is what a container runtime does: a new PID namespace, a new root, a non-root uid,
//! no capabilities.

use super::{doc_variables, read_repo_file, repo_file};
use crate::hourly::PAID;
use crate::support::{dist_dir, scratch, Report, Run};
use mpgate_emulator::{Emulator, World};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

const UNSHARE: &str = "/usr/bin/unshare";
const CHROOT: &str = "/usr/sbin/chroot";

/// One `FROM` section: its base image, its `AS` name and its instructions (keyword upper-cased, rest).
pub struct Stage {
    pub base: String,
    pub name: Option<String>,
    pub instructions: Vec<(String, String)>,
}

/// One `COPY [--from=STAGE] SRC DEST`.
pub struct Copy {
    pub from: Option<String>,
    pub src: String,
    pub dest: String,
}

/// Splits a Dockerfile into stages: continuation lines joined, comment lines dropped (as Docker does,
/// also inside a continued instruction).
pub fn parse(text: &str) -> Vec<Stage> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(body) => {
                current.push_str(body);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in logical {
        let (keyword, rest) = instruction.split_once(char::is_whitespace).unwrap_or((&instruction, ""));
        let (keyword, rest) = (keyword.to_ascii_uppercase(), rest.trim().to_string());
        if keyword == "FROM" {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                [_] => None,
                _ => panic!("unexpected FROM line: FROM {rest}"),
            };
            stages.push(Stage { base: words[0].to_string(), name, instructions: Vec::new() });
        } else {
            stages.last_mut().expect("an instruction before the first FROM").instructions.push((keyword, rest));
        }
    }
    stages
}

impl Stage {
    pub fn all(&self, keyword: &str) -> Vec<&str> {
        self.instructions.iter().filter(|(k, _)| k == keyword).map(|(_, r)| r.as_str()).collect()
    }

    /// ENTRYPOINT and CMD: the last one wins, and it must be exec form (a JSON array). Shell form would
    /// run `/bin/sh -c`, which makes the shell PID 1 and drops CMD's arguments.
    pub fn exec_form(&self, keyword: &str) -> Vec<String> {
        let raw = self.all(keyword).last().copied().unwrap_or_else(|| panic!("stage has no {keyword}"));
        serde_json::from_str(raw).unwrap_or_else(|e| panic!("{keyword} {raw} is not exec form (a JSON array): {e}"))
    }

    /// USER as numeric (uid, gid): a `FROM scratch` image has no /etc/passwd to resolve a name.
    pub fn user(&self) -> (u32, u32) {
        let raw = self.all("USER").last().copied().expect("stage has no USER: it would run as root");
        let (uid, gid) = raw.split_once(':').unwrap_or((raw, raw));
        let parse = |s: &str| s.parse::<u32>().unwrap_or_else(|_| panic!("USER {raw} must be numeric uid:gid"));
        (parse(uid), parse(gid))
    }

    pub fn copies(&self) -> Vec<Copy> {
        self.all("COPY")
            .into_iter()
            .map(|rest| {
                let (flags, paths): (Vec<&str>, Vec<&str>) = rest.split_whitespace().partition(|w| w.starts_with("--"));
                let from = flags.iter().find_map(|f| f.strip_prefix("--from=")).map(str::to_string);
                let [src, dest] = paths.as_slice() else {
                    panic!("COPY {rest}: expected one source and one destination")
                };
                Copy { from, src: src.to_string(), dest: dest.to_string() }
            })
            .collect()
    }
}

pub fn dockerfile() -> Vec<Stage> {
    parse(&read_repo_file("Dockerfile.example"))
}

/// The stage that runs `cargo build` for mpgate.
fn builder(stages: &[Stage]) -> &Stage {
    stages
        .iter()
        .find(|s| s.all("RUN").iter().any(|r| r.contains("cargo build") && r.contains("-p mpgate")))
        .expect("a stage that builds mpgate")
}

fn stage<'a>(stages: &'a [Stage], name: &str) -> &'a Stage {
    stages.iter().find(|s| s.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no stage {name}"))
}

#[test]
fn dockerfile_builder_bakes_a_static_locked_release_gate_from_build_arguments() {
    let stages = dockerfile();
    let builder = builder(&stages);
    let run = builder.all("RUN").join("\n");
    for needle in ["cargo build --locked --release", "unknown-linux-musl", "check --offline"] {
        assert!(run.contains(needle), "the builder's RUN lacks {needle:?}:\n{run}");
    }
    assert!(!run.contains("insecure-test-endpoints"), "the example must build the release flavour");
    let build_time = doc_variables("## Build time", "## Run time");
    let args: Vec<&str> = builder.all("ARG").iter().map(|a| a.split('=').next().unwrap_or(a)).collect();
    for required in ["MPGATE_PRODUCT_CODE", "MPGATE_PRICING_MODEL", "MPGATE_PUBLIC_KEYS"] {
        assert!(args.contains(&required), "builder lacks ARG {required}: {args:?}");
    }
    for arg in args.iter().filter(|a| a.starts_with("MPGATE_")) {
        assert!(build_time.contains(*arg), "ARG {arg} is not a build-time input in docs/configuration.md");
    }
}

#[test]
fn dockerfile_final_stage_is_the_gate_in_exec_form_with_cmd_and_a_non_root_user() {
    let stages = dockerfile();
    let builder_name = builder(&stages).name.clone().expect("the builder stage is named");
    let last = stages.last().expect("stages");
    assert!(
        last.base == "scratch" || last.base.starts_with("gcr.io/distroless/static"),
        "final stage must be FROM scratch or distroless static, is FROM {}",
        last.base
    );
    let entrypoint = last.exec_form("ENTRYPOINT");
    assert!(
        entrypoint.len() >= 3 && entrypoint[1] == "exec",
        "ENTRYPOINT {entrypoint:?}: expected [gate, exec, ..., --]"
    );
    assert_eq!(entrypoint.last().map(String::as_str), Some("--"), "\"--\" keeps CMD's arguments away from mpgate");
    let copies = last.copies();
    let gate = copies.iter().find(|c| c.dest == entrypoint[0]).expect("ENTRYPOINT's program is copied in");
    assert_eq!(gate.from.as_deref(), Some(builder_name.as_str()), "the gate comes from the builder stage");
    let cmd = last.exec_form("CMD");
    assert!(!cmd.is_empty(), "CMD names the workload");
    assert!(copies.iter().any(|c| c.dest == cmd[0]), "CMD's program {} is copied into the final stage", cmd[0]);
    let (uid, gid) = last.user();
    assert!(uid != 0 && gid != 0, "USER {uid}:{gid} must not be root");
}

#[test]
fn dockerfile_entrypoint_script_variant_puts_the_gate_in_front_of_the_script() {
    let stages = dockerfile();
    let variant = stage(&stages, "with-entrypoint-script");
    let entrypoint = variant.exec_form("ENTRYPOINT");
    let script = entrypoint.last().expect("entrypoint");
    assert_eq!(entrypoint[..entrypoint.len() - 1], ["/mpgate", "exec", "--"], "{entrypoint:?}");
    let copy = variant.copies().into_iter().find(|c| &c.dest == script).expect("the script is copied in");
    assert_eq!(copy.from, None, "the script comes from the build context");
    let text = read_repo_file(&copy.src);
    assert!(text.lines().any(|l| l.trim() == "exec \"$@\""), "{} must end by exec'ing CMD", copy.src);
    assert!(variant.user().0 != 0, "the variant runs as a non-root USER too");
}

/// A root filesystem for `stage`: the test gate where the builder's binary goes, the test workload at
/// CMD's program, `extra` (repository file, destination) pairs, and a termination log the USER can
/// write (Kubernetes mounts it writable for the container). Copies of busybox for the demo /server are
/// left out: the test workload replaces that server.
fn assemble(stages: &[Stage], stage: &Stage, extra: &[(&str, &str)]) -> tempfile::TempDir {
    let root = scratch();
    let builder = builder(stages).name.clone();
    let cmd = stage.exec_form("CMD");
    let put = |from: &Path, dest: &str| {
        let to = root.path().join(dest.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
    };
    for copy in stage.copies() {
        if copy.from == builder {
            put(&dist_dir().join("mpgate-test"), &copy.dest);
        } else if copy.dest == cmd[0] {
            put(&dist_dir().join("mpgate-test-workload"), &copy.dest);
        } else if let Some((src, dest)) = extra.iter().find(|(_, d)| *d == copy.dest) {
            put(&repo_file(src), dest);
        }
    }
    std::fs::create_dir_all(root.path().join("dev")).expect("mkdir dev");
    std::fs::create_dir_all(root.path().join("proc")).expect("mkdir proc");
    let log = root.path().join("dev/termination-log");
    std::fs::write(&log, "").expect("termination log");
    let (uid, gid) = stage.user();
    std::os::unix::fs::chown(&log, Some(uid), Some(gid)).expect("chown termination log");
    // Image layers are world-readable; a temporary directory is 0700 and would hide everything.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod root");
    root
}

/// `docker run [--entrypoint ...] IMAGE ARGS...` for a stage: a PID namespace with its own /proc (as a
/// container runtime mounts it), the new root, the stage's USER.
fn container(root: &Path, stage: &Stage, entrypoint: &[String], args: &[&str], env: Vec<(String, String)>) -> Run {
    let (uid, gid) = stage.user();
    let script = format!(r#"mount -t proc proc "$0/proc" && exec {CHROOT} --userspec={uid}:{gid} "$0" "$@""#);
    Run::bin(UNSHARE.into())
        .envs(env)
        .args(["--pid", "--fork", "--mount", "/bin/sh", "-c", &script])
        .arg(root)
        .args(entrypoint)
        .args(args)
}

/// The test workload's `report -` output.
fn stdout_report(stdout: &str) -> Report {
    let dir = scratch();
    std::fs::write(dir.path().join("report.json"), stdout).expect("report");
    Report::read(&dir.path().join("report.json"))
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn dockerfile_final_stage_rootfs_admits_as_its_non_root_user() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let stages = dockerfile();
    let last = stages.last().expect("stages");
    let root = assemble(&stages, last, &[]);
    let env_dir = scratch();
    let env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    let cmd = last.exec_form("CMD");
    // `docker run IMAGE /server report -`: CMD replaced, ENTRYPOINT (the gate) kept.
    let out = container(root.path(), last, &last.exec_form("ENTRYPOINT"), &[&cmd[0], "report", "-"], env.clone()).run();
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let r = stdout_report(&out.stdout());
    assert_eq!(r.pid, 1, "the workload replaced the gate as PID 1");
    assert_eq!(r.argv, [cmd[0].as_bytes(), b"report", b"-"], "argv reaches the workload untouched");
    assert_eq!(r.var("MPGATE_PRODUCT_CODE").as_deref(), Some(PAID));
    assert_eq!(r.var("MPGATE_TIER").as_deref(), Some("paid"));
    assert_eq!(emu.requests().iter().filter(|r| r.op == "RegisterUsage").count(), 1);
    // Negative control: the same start cannot write into the root, so it really ran as USER, not root.
    let denied =
        container(root.path(), last, &last.exec_form("ENTRYPOINT"), &[&cmd[0], "report", "/report.json"], env).run();
    assert_eq!(denied.code(), Some(99), "the USER could write to / (running as root?): {}", denied.stderr());
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn dockerfile_final_stage_refusal_reaches_the_termination_log() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let stages = dockerfile();
    let last = stages.last().expect("stages");
    let root = assemble(&stages, last, &[]);
    let env_dir = scratch();
    let env = emu.workload_env("unsubscribed-task", env_dir.path()).expect("env");
    let out = container(root.path(), last, &last.exec_form("ENTRYPOINT"), &["/server", "report", "-"], env)
        .run()
        .expect_status(80)
        .expect_stdout_empty()
        .expect_one_refusal_line()
        .check();
    let log = std::fs::read_to_string(root.path().join("dev/termination-log")).expect("log");
    assert_eq!(log.trim_end(), out.last_line(), "the non-root USER wrote the refusal for kubectl describe pod");
}

/// The host's /bin/sh with the shared libraries `ldd` names, for the variant whose script needs a shell
/// (the real image uses busybox; no static shell is installed here).
fn install_host_shell(root: &Path) {
    let sh = std::fs::canonicalize("/bin/sh").expect("/bin/sh");
    let ldd = std::process::Command::new("ldd").arg(&sh).output().expect("ldd");
    let text = String::from_utf8_lossy(&ldd.stdout);
    let libs = text.lines().filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')));
    for path in std::iter::once("/bin/sh").chain(libs) {
        let src = if path == "/bin/sh" { sh.clone() } else { Path::new(path).to_path_buf() };
        let to = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&src, &to).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    }
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn dockerfile_entrypoint_script_variant_runs_the_script_after_admission_and_refuses_a_bypass() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let stages = dockerfile();
    let variant = stage(&stages, "with-entrypoint-script");
    let root = assemble(&stages, variant, &[("deploy/docker-entrypoint.sh", "/docker-entrypoint.sh")]);
    install_host_shell(root.path());
    let env_dir = scratch();
    let env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    let cmd = variant.exec_form("CMD");
    let entrypoint = variant.exec_form("ENTRYPOINT");
    let out = container(root.path(), variant, &entrypoint, &[&cmd[0], "report", "-"], env.clone())
        .run()
        .expect_status(0)
        .expect_stderr_contains("mpgate: gate pass ok: product 8f3kq2demopaid0mpgate01 (tier paid)")
        .expect_stderr_contains("docker-entrypoint.sh: admitted as tier paid")
        .check();
    let r = stdout_report(&out.stdout());
    assert_eq!(r.pid, 1, "gate → script → workload, each exec'd: the workload is PID 1");
    assert_eq!(r.argv, [cmd[0].as_bytes(), b"report", b"-"]);
    assert_eq!(r.var("MPGATE_TIER").as_deref(), Some("paid"));
    // `docker run --entrypoint /docker-entrypoint.sh IMAGE ...`: no gate, so the script's check refuses.
    let bypass =
        container(root.path(), variant, &[entrypoint.last().expect("script").clone()], &[&cmd[0], "report", "-"], env)
            .run()
            .expect_status(85)
            .expect_stdout_empty()
            .expect_stderr_contains("mpgate: ")
            .check();
    assert!(!bypass.stderr().contains("admitted"), "{}", bypass.stderr());
    assert_eq!(emu.requests().iter().filter(|r| r.op == "RegisterUsage").count(), 1, "only the gated start registered");
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn dockerfile_supervise_variant_keeps_the_gate_as_pid_1_and_passes_the_status_through() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let stages = dockerfile();
    let variant = stage(&stages, "supervise");
    let entrypoint = variant.exec_form("ENTRYPOINT");
    assert_eq!(entrypoint, ["/mpgate", "supervise", "--"]);
    assert!(variant.user().0 != 0, "the variant runs as a non-root USER too");
    let root = assemble(&stages, variant, &[]);
    let env_dir = scratch();
    let env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    let cmd = variant.exec_form("CMD");
    // The workload reports itself, then exits 7: supervise must exit 7 too.
    let out = container(root.path(), variant, &entrypoint, &[&cmd[0], "report", "-", "7"], env).run();
    assert_eq!(out.code(), Some(7), "the workload's status passes through: {}", out.stderr());
    let r = stdout_report(&out.stdout());
    assert_eq!(r.ppid, 1, "mpgate stays PID 1 as the workload's parent");
    assert_ne!(r.pid, 1, "the workload is mpgate's child, not PID 1");
    assert_eq!(r.argv, [cmd[0].as_bytes(), b"report", b"-", b"7"]);
    assert_eq!(r.var("MPGATE_TIER").as_deref(), Some("paid"));
    assert_eq!(emu.requests().iter().filter(|r| r.op == "RegisterUsage").count(), 1);
}

/// The privilege-separated variant: mpgate as root, `--user` a numeric non-root uid:gid, the spool at
/// a fixed path, `--` before CMD.
#[test]
fn dockerfile_separated_supervise_variant_keeps_mpgate_root_and_names_a_non_root_workload_user() {
    let stages = dockerfile();
    let variant = stage(&stages, "supervise-separated");
    assert_eq!(variant.user(), (0, 0), "mpgate starts as root to run the workload as another user");
    let entrypoint = variant.exec_form("ENTRYPOINT");
    assert_eq!(entrypoint[..2], ["/mpgate", "supervise"], "{entrypoint:?}");
    assert_eq!(entrypoint.last().map(String::as_str), Some("--"));
    let after = |flag: &str| entrypoint.iter().position(|a| a == flag).map(|i| entrypoint[i + 1].clone());
    let user = after("--user").expect("--user");
    let (uid, gid) = user.split_once(':').expect("UID:GID");
    assert!(uid.parse::<u32>().is_ok_and(|u| u != 0) && gid.parse::<u32>().is_ok_and(|g| g != 0), "{user}");
    assert!(after("--spool").is_some_and(|p| p.starts_with('/')), "the spool path is fixed in the image");
}

#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn dockerfile_separated_supervise_variant_runs_the_workload_as_its_user_under_a_root_gate() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let stages = dockerfile();
    let variant = stage(&stages, "supervise-separated");
    let root = assemble(&stages, variant, &[]);
    let env_dir = scratch();
    let env = emu.workload_env("ecs-task", env_dir.path()).expect("env");
    let cmd = variant.exec_form("CMD");
    let entrypoint = variant.exec_form("ENTRYPOINT");
    let out = container(root.path(), variant, &entrypoint, &[&cmd[0], "report", "-"], env.clone()).run();
    assert_eq!(out.code(), Some(0), "{}", out.stderr());
    let r = stdout_report(&out.stdout());
    assert_eq!(r.ppid, 1, "mpgate stays PID 1 as the workload's parent");
    assert_eq!(r.var("MPGATE_TIER").as_deref(), Some("paid"));
    // The workload cannot write into the root (mpgate, as root, could): it runs as the --user uid.
    let denied = container(root.path(), variant, &entrypoint, &[&cmd[0], "report", "/report.json"], env).run();
    assert_eq!(denied.code(), Some(99), "the workload could write to / (running as root?): {}", denied.stderr());
}
