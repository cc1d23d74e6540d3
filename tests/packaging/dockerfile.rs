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
/// also inside a continued instruction). The global `ARG`s before the first `FROM` are left out
/// (`global_args` has them).
pub fn parse(text: &str) -> Vec<Stage> {
    parse_all(text).1
}

/// The global `ARG name=default` entries before the first `FROM`, as (name, default).
pub fn global_args(text: &str) -> Vec<(String, String)> {
    parse_all(text)
        .0
        .into_iter()
        .map(|(keyword, rest)| {
            assert_eq!(keyword, "ARG", "only ARG may come before the first FROM: {keyword} {rest}");
            let (name, default) = rest.split_once('=').unwrap_or((&rest, ""));
            (name.to_string(), default.to_string())
        })
        .collect()
}

fn parse_all(text: &str) -> (Vec<(String, String)>, Vec<Stage>) {
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
    let mut globals = Vec::new();
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
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push((keyword, rest));
        } else {
            globals.push((keyword, rest));
        }
    }
    (globals, stages)
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

/// The stage a `FROM ${ARG} AS alias` stage resolves to with the global ARG's default: the gate the
/// images copy by default.
fn resolve<'a>(stages: &'a [Stage], alias: &str) -> &'a Stage {
    let from = &stage(stages, alias).base;
    let arg =
        from.strip_prefix("${").and_then(|a| a.strip_suffix('}')).unwrap_or_else(|| panic!("{alias}: FROM {from}"));
    let globals = global_args(&read_repo_file("Dockerfile.example"));
    let (_, default) = globals.iter().find(|(name, _)| name == arg).unwrap_or_else(|| panic!("no global ARG {arg}"));
    stage(stages, default)
}

/// The stage's exec-form `RUN`s (JSON arrays): the only form a `FROM scratch` stage can run.
fn exec_runs(stage: &Stage) -> Vec<Vec<String>> {
    stage.all("RUN").iter().filter_map(|r| serde_json::from_str(r).ok()).collect()
}

/// The stages that copy `/mpgate` from the stage alias `gate_alias`.
fn stages_copying<'a>(stages: &'a [Stage], gate_alias: &str) -> Vec<&'a Stage> {
    stages
        .iter()
        .filter(|s| s.copies().iter().any(|c| c.from.as_deref() == Some(gate_alias) && c.dest == "/mpgate"))
        .collect()
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
    let alias = gate.from.clone().expect("the gate comes from another stage");
    assert_eq!(resolve(&stages, &alias).name.as_deref(), Some(builder_name.as_str()), "by default from the builder");
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
fn assemble(stage: &Stage, extra: &[(&str, &str)]) -> tempfile::TempDir {
    let root = scratch();
    let gates = [Some("gate".to_string()), Some("test-gate".to_string())];
    let cmd = stage.exec_form("CMD");
    let put = |from: &Path, dest: &str| {
        let to = root.path().join(dest.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
    };
    for copy in stage.copies() {
        if gates.contains(&copy.from) {
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
    let root = assemble(last, &[]);
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
    let root = assemble(last, &[]);
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
    let root = assemble(variant, &[("deploy/docker-entrypoint.sh", "/docker-entrypoint.sh")]);
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
    let root = assemble(variant, &[]);
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
    let root = assemble(variant, &[]);
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

/// `--target test` is the default image with the test-flavour gate, built by its own
/// builder into its own target directory with the documented opt-in variable.
#[test]
fn dockerfile_test_target_is_the_final_image_with_a_test_flavour_gate() {
    let stages = dockerfile();
    let last = stages.last().expect("stages");
    let test = stage(&stages, "test");
    assert_eq!(test.base, "scratch");
    for keyword in ["ENTRYPOINT", "CMD"] {
        assert_eq!(test.exec_form(keyword), last.exec_form(keyword), "{keyword} as in the image that ships");
    }
    assert_eq!(test.user(), last.user());
    let gate = test.copies().into_iter().find(|c| c.dest == "/mpgate").expect("the test gate is copied in");
    let test_builder = resolve(&stages, gate.from.as_deref().expect("from a stage"));
    let run = test_builder.all("RUN").join("\n");
    for needle in ["--features mpgate/insecure-test-endpoints", "--target-dir target/test-flavour", "--locked"] {
        assert!(run.contains(needle), "the test builder's RUN lacks {needle:?}:\n{run}");
    }
    let release_run = builder(&stages).all("RUN").join("\n");
    assert!(release_run.contains("--target-dir target/release-flavour"), "{release_run}");
    let opt_in =
        test_builder.all("ARG").into_iter().find(|a| a.starts_with("MPGATE_INSECURE_TEST_BUILD=")).expect("opt-in");
    let value = opt_in.split_once('=').map(|(_, v)| v).unwrap_or_default();
    let doc = read_repo_file("docs/configuration.md");
    assert!(doc.contains(&format!("`MPGATE_INSECURE_TEST_BUILD` | only for the test flavour | Must equal `{value}`")));
    assert_eq!(exec_runs(test), [["/mpgate", "check", "--offline", "--allow-test-flavour"]]);
}

/// Every image that takes the release gate runs `mpgate check --offline` on the very
/// file it ships, in exec form, before its USER; only the test targets allow the test flavour.
#[test]
fn dockerfile_release_images_run_the_release_check_on_the_gate_they_ship() {
    let stages = dockerfile();
    let release = stages_copying(&stages, "gate");
    assert!(release.len() >= 4, "the final image and its variants copy the gate: {}", release.len());
    for s in &release {
        let name = s.name.as_deref().unwrap_or("(final)");
        assert_eq!(exec_runs(s), [["/mpgate", "check", "--offline"]], "{name}");
        let order: Vec<&str> = s.instructions.iter().map(|(k, _)| k.as_str()).collect();
        let run = order.iter().position(|k| *k == "RUN").expect("RUN");
        assert!(order.iter().position(|k| *k == "USER").is_none_or(|u| u > run), "{name}: RUN before USER");
    }
    for s in stages_copying(&stages, "test-gate") {
        assert!(s.name.as_deref().is_some_and(|n| n.starts_with("test")), "a test gate in a release stage");
    }
    let allowing: Vec<&str> = stages
        .iter()
        .filter(|s| s.all("RUN").iter().any(|r| r.contains("--allow-test-flavour")))
        .map(|s| s.name.as_deref().unwrap_or("(final)"))
        .collect();
    assert_eq!(allowing, ["mpgate-test", "test-metered", "test"], "only the test builder and targets allow it");
}

/// The RUN a release image's build makes, run on a root filesystem with the test-flavour gate (what
/// `--build-arg MPGATE_GATE=prebuilt` with a test build in prebuilt/mpgate gives): the build stops
/// (exit 86, the flavour named); the test target's RUN passes with the same gate, and the release
/// image's RUN passes with the release gate.
#[test]
fn dockerfile_release_check_stops_a_build_that_takes_the_test_flavour() {
    let stages = dockerfile();
    let last = stages.last().expect("stages");
    let root = assemble(last, &[]);
    let [release_check] = exec_runs(last).try_into().expect("one RUN");
    let gate = root.path().join(release_check[0].trim_start_matches('/'));
    let out = Run::bin(gate.clone()).args(&release_check[1..]).run().expect_status(86).check();
    assert!(out.stdout().contains("FAIL    flavour"), "{}", out.stdout());
    let [test_check] = exec_runs(stage(&stages, "test")).try_into().expect("one RUN");
    Run::bin(gate).args(&test_check[1..]).run().expect_status(0).check();
    Run::bin(dist_dir().join("mpgate")).args(&release_check[1..]).run().expect_status(0).check();
}

/// The custom-metering test image is supervise-separated with the test gate, and both
/// carry the spool directory at the path their ENTRYPOINT names, made by the workload stage
/// (scripts/build-images checks its owner and mode in the built image).
#[test]
fn dockerfile_metered_images_carry_the_spool_their_entrypoint_names() {
    let stages = dockerfile();
    let metered = stage(&stages, "test-metered");
    let separated = stage(&stages, "supervise-separated");
    assert_eq!(metered.exec_form("ENTRYPOINT"), separated.exec_form("ENTRYPOINT"));
    assert_eq!(metered.exec_form("CMD"), separated.exec_form("CMD"));
    assert_eq!(metered.user(), separated.user());
    let entrypoint = metered.exec_form("ENTRYPOINT");
    let spool = entrypoint.iter().position(|a| a == "--spool").map(|i| entrypoint[i + 1].clone()).expect("--spool");
    for s in [metered, separated] {
        let copy =
            s.copies().into_iter().find(|c| c.dest == "/" && c.from.is_some()).expect("the spool tree copied in");
        let from = stage(&stages, copy.from.as_deref().expect("from"));
        let made = format!("{}{spool}", copy.src.trim_end_matches('/'));
        assert!(from.all("RUN").iter().any(|r| r.contains(&format!("mkdir -p {made}"))), "{made} is not made");
    }
}

/// README.md, docs/configuration.md and docs/building.md show the same test-flavour
/// build as the Dockerfile's test builder (the feature, the opt-in variable with the value build.rs
/// wants, a target directory of its own), how the emulator signs for it and where the real key comes from.
#[test]
fn docs_show_the_test_flavour_build_with_its_own_output_path() {
    let build_rs = read_repo_file("build.rs");
    let phrase = build_rs
        .lines()
        .find_map(|l| l.strip_prefix("const TEST_BUILD_PHRASE: &str = \"")?.strip_suffix("\";"))
        .expect("build.rs TEST_BUILD_PHRASE");
    let stages = dockerfile();
    let test_builder = stage(&stages, "mpgate-test").all("RUN").join("\n");
    for doc in ["README.md", "docs/configuration.md", "docs/building.md"] {
        let text = read_repo_file(doc);
        for needle in [
            format!("MPGATE_INSECURE_TEST_BUILD={phrase}"),
            "--features mpgate/insecure-test-endpoints --target-dir target/test-flavour".to_string(),
            "target/test-flavour/x86_64-unknown-linux-musl/release/mpgate".to_string(),
            "cargo build --locked --release --target x86_64-unknown-linux-musl -p mpgate".to_string(),
            "signing_keys".to_string(),
            "AWS Marketplace Management Portal".to_string(),
            "PUBLIC KEY".to_string(),
        ] {
            assert!(text.contains(&needle), "{doc} lacks {needle:?}");
        }
    }
    assert!(test_builder.contains("--target-dir target/test-flavour"), "{test_builder}");
    let readme = read_repo_file("README.md");
    assert!(readme.contains("check --offline --allow-test-flavour"), "README shows the test gate's check");
}
