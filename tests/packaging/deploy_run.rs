//! Each `deploy/` example's command line, started against the emulator: the ENTRYPOINT of the
//! Dockerfile.example stage the example is for, with the environment, the user and group, the pod's
//! `fsGroup` and the spool volume the example declares, on the platform it names (the ECS task role,
//! EKS IRSA), for every pricing model the example is for.
//!
//! Not modelled: the container runtime itself (the gate runs on the host with the declared uid, gid
//! and groups; `MPGATE_ALLOW_NOT_PID1` stands for being PID 1) and the read-only root (the only
//! writable paths the gate uses are the declared spool volume and the entitlements file's directory).

use super::deploy::doc as documents_of;
use super::dockerfile::{dockerfile, Stage};
use crate::support::{dist_dir, scratch, workload_bin, Report, Run};
use mpgate_emulator::{Emulator, World};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;

/// Which gate (test flavour, built by scripts/build-gates) stands for which pricing model.
const HOURLY: (&str, &str) = ("mpgate-test", mpgate_emulator::PAID);
const METERED: (&str, &str) = ("mpgate-test-metered", mpgate_emulator::METERED);
const CONTRACT: (&str, &str) = ("mpgate-test-contract", "");

/// What an example declares for its (first) container.
struct Declared {
    env: Vec<(String, String)>,
    uid: u32,
    gid: u32,
    fs_group: Option<u32>,
    /// Paths with a volume mounted (ECS `mountPoints`, Kubernetes `volumeMounts`).
    mounts: Vec<String>,
}

fn num(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

fn name_values(list: &Value) -> Vec<(String, String)> {
    list.as_array()
        .map(|l| {
            l.iter()
                .map(|e| {
                    (e["name"].as_str().expect("name").to_string(), e["value"].as_str().expect("value").to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn strings(list: &Value, key: &str) -> Vec<String> {
    list.as_array().map(|l| l.iter().filter_map(|m| m[key].as_str().map(String::from)).collect()).unwrap_or_default()
}

/// An ECS task definition's first container.
fn ecs(rel: &str) -> Declared {
    let [task] = documents_of(rel).try_into().expect("one document");
    let c = &task["containerDefinitions"][0];
    assert_eq!(c["readonlyRootFilesystem"], true, "{rel}: keep the root read-only");
    let user = c["user"].as_str().unwrap_or("0");
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let volumes = strings(&task["volumes"], "name");
    for m in c["mountPoints"].as_array().into_iter().flatten() {
        assert!(volumes.iter().any(|v| m["sourceVolume"] == v.as_str()), "{rel}: mount of an undeclared volume: {m}");
    }
    Declared {
        env: name_values(&c["environment"]),
        uid: uid.parse().expect("uid"),
        gid: gid.parse().expect("gid"),
        fs_group: None,
        mounts: strings(&c["mountPoints"], "containerPath"),
    }
}

/// A pod spec and its first container (a Deployment, or Helm values rendered the same way).
fn pod(rel: &str, pod: &Value, c: &Value, env: &Value, volumes: &Value) -> Declared {
    let security = |key: &str| num(&c["securityContext"][key]).or_else(|| num(&pod["securityContext"][key]));
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true, "{rel}: keep the root read-only");
    assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError", "{rel}");
    let names = strings(volumes, "name");
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        assert!(names.iter().any(|v| m["name"] == v.as_str()), "{rel}: mount of an undeclared volume: {m}");
    }
    let uid = security("runAsUser").expect("runAsUser");
    Declared {
        env: name_values(env),
        uid,
        gid: security("runAsGroup").unwrap_or(uid),
        fs_group: num(&pod["securityContext"]["fsGroup"]),
        mounts: strings(&c["volumeMounts"], "mountPath"),
    }
}

fn kubernetes(rel: &str) -> Declared {
    let docs = documents_of(rel);
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("a Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    pod(rel, spec, c, &c["env"], &spec["volumes"])
}

/// Helm values, read as the chart renders them into the Deployment.
fn helm(rel: &str) -> Declared {
    let [v] = documents_of(rel).try_into().expect("one document");
    let spec = serde_json::json!({ "securityContext": v["podSecurityContext"] });
    let c = serde_json::json!({
        "securityContext": v["securityContext"],
        "terminationMessagePolicy": v["terminationMessagePolicy"],
        "volumeMounts": v["volumeMounts"],
    });
    pod(rel, &spec, &c, &v["env"], &v["volumes"])
}

/// The ENTRYPOINT of the image an example is for: the release image (the last stage whose
/// ENTRYPOINT is `mpgate exec`) or the named stage.
fn entrypoint(stage: Option<&str>) -> Vec<String> {
    let stages = dockerfile();
    let found: Option<&Stage> = match stage {
        Some(name) => stages.iter().find(|s| s.name.as_deref() == Some(name)),
        None => stages.iter().rev().find(|s| s.exec_form("ENTRYPOINT").get(1).is_some_and(|w| w == "exec")),
    };
    found.unwrap_or_else(|| panic!("Dockerfile.example has no stage {stage:?}")).exec_form("ENTRYPOINT")
}

/// Start `entrypoint` + the test workload as CMD, as `declared` says, on `platform`, with the gate
/// of `model`. The spool path the ENTRYPOINT names must be a declared mount; it is a fresh directory.
fn start(emu: &Emulator, declared: &Declared, entry: &[String], platform: &str, gate: &str) -> crate::support::Outcome {
    let dir = scratch();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut env = emu.workload_env(platform, dir.path()).expect("env");
    if let Some((_, token)) = env.iter().find(|(k, _)| k == "AWS_WEB_IDENTITY_TOKEN_FILE") {
        // The kubelet's projected token: owned by root, readable by the fsGroup when there is one.
        let mode = if declared.fs_group.is_some() { 0o640 } else { 0o600 };
        std::os::unix::fs::chown(token, Some(0), declared.fs_group).expect("chown token");
        std::fs::set_permissions(token, std::fs::Permissions::from_mode(mode)).expect("chmod token");
    }
    env.extend(declared.env.iter().cloned());
    let mut args: Vec<String> = entry.to_vec();
    assert_eq!(args[0], "/mpgate", "the gate is the ENTRYPOINT: {args:?}");
    args[0] = dist_dir().join(gate).display().to_string();
    if let Some(i) = args.iter().position(|a| a == "--spool") {
        assert!(
            declared.mounts.contains(&args[i + 1]),
            "no volume is mounted at the spool {} ({:?})",
            args[i + 1],
            declared.mounts
        );
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).expect("spool volume");
        args[i + 1] = spool.display().to_string();
    }
    let groups = declared.fs_group.map_or("--clear-groups".to_string(), |g| format!("--groups={g}"));
    Run::bin("/usr/bin/setpriv".into())
        .envs(env)
        .env("PATH", "/usr/bin:/bin")
        .env("MPGATE_ALLOW_NOT_PID1", "1")
        .env("MPGATE_ENTITLEMENTS_DIR", dir.path())
        .args([format!("--reuid={}", declared.uid), format!("--regid={}", declared.gid), groups])
        .args(args)
        .arg(workload_bin())
        .args(["report", "-"])
        .run()
}

/// Every pricing model the example is for is admitted, and the workload runs.
fn admits(rel: &str, declared: &Declared, stage: Option<&str>, platform: &str, models: &[(&str, &str)]) {
    let entry = entrypoint(stage);
    for (gate, code) in models {
        let emu = Emulator::start(World::demo()).expect("emulator");
        let out = start(&emu, declared, &entry, platform, gate);
        assert_eq!(out.code(), Some(0), "{rel} with {gate}: {}", out.stderr());
        let dir = scratch();
        std::fs::write(dir.path().join("report.json"), out.stdout()).expect("report");
        let report = Report::read(&dir.path().join("report.json"));
        let admitted = report.var("MPGATE_PRODUCT_CODE").unwrap_or_else(|| panic!("{rel} with {gate}: no verdict"));
        assert!(code.is_empty() || admitted == *code, "{rel} with {gate}: admitted {admitted}");
    }
}

#[test]
#[ignore = "needs root: setpriv to the declared uid (scripts/test runs it)"]
fn ecs_task_definition_runs_an_hourly_image_as_its_user() {
    admits("deploy/ecs/task-definition.json", &ecs("deploy/ecs/task-definition.json"), None, "ecs-task", &[HOURLY]);
}

#[test]
#[ignore = "needs root: the gate runs the workload as another uid (scripts/test runs it)"]
fn ecs_supervise_task_definition_runs_custom_metering_and_contract_images_with_its_spool_volume() {
    let rel = "deploy/ecs/task-definition-supervise.json";
    admits(rel, &ecs(rel), Some("supervise-separated"), "ecs-task", &[METERED, CONTRACT]);
}

#[test]
#[ignore = "needs root: setpriv to the declared uid (scripts/test runs it)"]
fn kubernetes_deployment_runs_an_hourly_image_with_irsa_as_its_user_and_fs_group() {
    let rel = "deploy/kubernetes/deployment.yaml";
    admits(rel, &kubernetes(rel), None, "eks-irsa", &[HOURLY]);
}

#[test]
#[ignore = "needs root: the gate runs the workload as another uid (scripts/test runs it)"]
fn kubernetes_supervise_deployment_runs_custom_metering_and_contract_images_with_its_spool_volume() {
    let rel = "deploy/kubernetes/deployment-supervise.yaml";
    admits(rel, &kubernetes(rel), Some("supervise-separated"), "eks-irsa", &[METERED, CONTRACT]);
}

#[test]
#[ignore = "needs root: setpriv to the declared uid (scripts/test runs it)"]
fn helm_values_run_an_hourly_image_as_the_deployment_does() {
    admits("deploy/helm/values.yaml", &helm("deploy/helm/values.yaml"), None, "eks-irsa", &[HOURLY]);
}

#[test]
#[ignore = "needs root: the gate runs the workload as another uid (scripts/test runs it)"]
fn helm_supervise_values_run_custom_metering_and_contract_images_with_their_spool_volume() {
    let rel = "deploy/helm/values-supervise.yaml";
    admits(rel, &helm(rel), Some("supervise-separated"), "eks-irsa", &[METERED, CONTRACT]);
}

/// The examples' fsGroup is what makes the token readable: without it the same start is refused,
/// naming the token file and the uid and gid.
#[test]
#[ignore = "needs root: setpriv to the declared uid (scripts/test runs it)"]
fn without_the_fs_group_the_kubernetes_example_is_refused_naming_the_token_and_uid() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let mut declared = kubernetes("deploy/kubernetes/deployment.yaml");
    declared.fs_group = None;
    start(&emu, &declared, &entrypoint(None), "eks-irsa", HOURLY.0)
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("is not readable by uid 65532 (gid 65532)")
        .expect_stderr_contains("fsGroup")
        .check();
}

/// A supervise example whose spool path is not a mounted volume (the read-only root) is caught.
#[test]
fn the_supervise_examples_mount_a_volume_at_the_images_spool_path() {
    let entry = entrypoint(Some("supervise-separated"));
    let spool = entry.iter().position(|a| a == "--spool").map(|i| entry[i + 1].clone()).expect("--spool");
    for (rel, declared) in [
        ("deploy/ecs/task-definition-supervise.json", ecs("deploy/ecs/task-definition-supervise.json")),
        ("deploy/kubernetes/deployment-supervise.yaml", kubernetes("deploy/kubernetes/deployment-supervise.yaml")),
        ("deploy/helm/values-supervise.yaml", helm("deploy/helm/values-supervise.yaml")),
    ] {
        assert!(declared.mounts.contains(&spool), "{rel}: no volume at {spool}: {:?}", declared.mounts);
    }
}

/// docs/operating.md's `kubectl run mpgate-check` recipe runs like the Deployment's pod: in its
/// namespace (the IRSA webhook injects only that namespace's service account role), with its service
/// account, its pod securityContext (uid, gid, fsGroup decide whether the token is readable) and
/// every variable the container sets.
#[test]
fn the_kubectl_check_recipe_runs_in_the_deployments_namespace_with_its_account_security_and_env() {
    let doc = super::read_repo_file("docs/operating.md");
    let start = doc.find("kubectl run mpgate-check").expect("the recipe");
    let recipe = doc[start..doc[start..].find("```").map_or(doc.len(), |e| start + e)].replace("\\\n", " ");
    let words: Vec<&str> = recipe.split_whitespace().collect();
    let after = |flag: &str| words.iter().position(|w| *w == flag).map(|i| words[i + 1]);
    let docs = documents_of("deploy/kubernetes/deployment.yaml");
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("a Deployment");
    assert_eq!(after("--namespace"), deployment["metadata"]["namespace"].as_str(), "{recipe}");
    let spec = &deployment["spec"]["template"]["spec"];
    let overrides = words.iter().find_map(|w| w.strip_prefix("--overrides=")).expect("--overrides");
    let overrides: Value = serde_json::from_str(overrides.trim_matches('\'')).expect("--overrides is JSON");
    assert_eq!(overrides["spec"]["serviceAccountName"], spec["serviceAccountName"], "{recipe}");
    assert_eq!(overrides["spec"]["securityContext"], spec["securityContext"], "{recipe}");
    for (name, value) in name_values(&spec["containers"][0]["env"]) {
        assert!(words.contains(&format!("--env={name}={value}").as_str()), "{recipe} lacks --env={name}={value}");
    }
    assert!(recipe.contains("--command -- /mpgate check"), "{recipe}");
}
