//! `mpgate check`: the verdict, the named cause and the fix for each environment, a stable JSON
//! schema, no billing without `--live` (emulator ledger), and no `pass` for what was not verified.

use crate::support::{scratch, Run};
use mpgate_emulator::{Emulator, Fault, World};
use serde_json::Value;
use std::path::Path;

fn check(emu: &Emulator, workload: &str, dir: &Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let out =
        Run::gate().envs(emu.workload_env(workload, dir).expect("env")).arg("check").arg("--json").args(args).run();
    let json: Value = serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout()));
    (out.code(), json, out.stderr())
}

fn status<'a>(report: &'a Value, id: &str) -> (&'a str, &'a str, Option<&'a str>) {
    let c = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id}"));
    (c["status"].as_str().expect("status"), c["summary"].as_str().expect("summary"), c["fix"].as_str())
}

fn method<'a>(report: &'a Value, id: &str) -> &'a str {
    let c = report["checks"].as_array().expect("checks").iter().find(|c| c["id"] == id).expect("check");
    c["method"].as_str().expect("method")
}

fn register_calls(emu: &Emulator) -> usize {
    emu.requests().iter().filter(|r| r.op == "RegisterUsage").count()
}

/// Without `--live` the subscription and the IAM permission are not verified: the verdict says so
/// (exit 88, not `pass`), names the row and what `--live` costs, and nothing is billed.
#[test]
fn ecs_task_without_live_is_unverified_and_calls_no_register_usage() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let (code, report, _) = check(&emu, "ecs-task", dir.path(), &[]);
    assert_eq!(code, Some(88), "{report}");
    assert_eq!(report["verdict"], "unverified");
    assert_eq!(report["not_verified"], serde_json::json!(["entitlement"]));
    assert_eq!(status(&report, "platform").0, "pass");
    let (s, summary, _) = status(&report, "credentials");
    assert_eq!(s, "pass");
    assert!(summary.contains("ECS task role"), "{summary}");
    assert!(
        summary.contains("GetCallerIdentity: arn:aws:sts::111122223333:assumed-role/ecs-task-task-role/ecs-task, AWS account 111122223333"),
        "{summary}"
    );
    assert!(method(&report, "credentials").contains("sts:GetCallerIdentity"));
    let callers = emu.requests().iter().filter(|r| r.op == "GetCallerIdentity").count();
    assert_eq!(callers, 1, "one GetCallerIdentity, signed with the task role's credentials");
    assert!(status(&report, "region").1.contains("us-east-1 (from AWS_REGION)"));
    assert_eq!(status(&report, "endpoint").0, "pass");
    let (s, summary, fix) = status(&report, "entitlement");
    assert_eq!(s, "skip");
    assert!(summary.starts_with("not verified: the subscription to product 8f3kq2demopaid0mpgate01"), "{summary}");
    assert!(summary.contains("aws-marketplace:RegisterUsage") && summary.contains("one-minute minimum"), "{summary}");
    assert!(fix.expect("fix").contains("mpgate check --live"));
    assert_eq!(method(&report, "entitlement"), "not called");
    assert_eq!(register_calls(&emu), 0, "check without --live must not start metering");
}

/// The same for a person: the verdict line and the rows not verified, each row with its method.
#[test]
fn the_text_report_names_what_was_not_verified_and_each_method() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = Run::gate()
        .envs(emu.workload_env("eks-irsa", dir.path()).expect("env"))
        .arg("check")
        .run()
        .expect_status(88)
        .check();
    let text = out.stdout();
    assert!(text.contains("verdict: unverified (exit 88)"), "{text}");
    assert!(text.contains("not verified: entitlement"), "{text}");
    assert!(text.contains("GetCallerIdentity: arn:aws:sts::111122223333:assumed-role/mpgate-irsa/eks-irsa"), "{text}");
    assert!(text.contains("via: HTTPS GET of the endpoint's root"), "{text}");
    assert!(!text.contains("verdict: pass"), "{text}");
}

#[test]
fn live_check_calls_register_usage_once() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let (code, report, _) = check(&emu, "ecs-task", dir.path(), &["--live"]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["not_verified"], serde_json::json!([]));
    assert!(status(&report, "entitlement").1.contains("admitted product 8f3kq2demopaid0mpgate01"));
    assert!(method(&report, "entitlement").starts_with("RegisterUsage"));
    assert_eq!(register_calls(&emu), 1);
}

#[test]
fn live_check_of_an_unsubscribed_account_would_refuse() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let (code, report, _) = check(&emu, "unsubscribed-task", dir.path(), &["--live"]);
    assert_eq!(code, Some(86), "{report}");
    assert!(status(&report, "entitlement").1.contains("CustomerNotEntitledException"));
    assert!(status(&report, "entitlement").1.contains("signed by AWS account 444455556666"), "{report}");
    assert!(status(&report, "credentials").1.contains("AWS account 444455556666"), "{report}");

    // STS unreachable (a private subnet without its endpoint): the row still names the account the
    // credentials carry, and says why STS did not.
    let emu = Emulator::start(World::demo()).expect("emulator");
    emu.inject("GetCallerIdentity", Fault::Status(403, "AccessDenied".into()));
    let (_, report, _) = check(&emu, "ecs-task", dir.path(), &[]);
    let (s, summary, _) = status(&report, "credentials");
    assert_eq!(s, "pass", "{report}");
    assert!(summary.contains("; AWS account 111122223333 (GetCallerIdentity failed: "), "{summary}");
}

#[test]
fn endless_throttling_is_could_not_tell() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    for _ in 0..100 {
        emu.inject("RegisterUsage", Fault::Throttle);
    }
    let dir = scratch();
    let out = Run::gate()
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .env("MPGATE_DEADLINE", "2s")
        .args(["check", "--json", "--live"])
        .run();
    let report: Value = serde_json::from_str(out.stdout().trim()).expect("json");
    assert_eq!(out.code(), Some(87), "{report}");
    assert_eq!(report["verdict"], "could-not-tell");
    assert_eq!(status(&report, "entitlement").0, "unknown");
}

#[test]
fn pod_identity_is_named_with_the_irsa_fix() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let (code, report, _) = check(&emu, "eks-pod-identity", dir.path(), &[]);
    assert_eq!(code, Some(86));
    assert_eq!(status(&report, "platform").1, "EKS with Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI)");
    let (s, summary, fix) = status(&report, "credentials");
    assert_eq!(s, "fail");
    assert!(summary.contains("EKS Pod Identity"));
    assert!(fix.expect("fix").contains("eks.amazonaws.com/role-arn"));
}

#[test]
fn static_keys_fail_and_the_secret_is_never_shown() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let (code, report, stderr) = check(&emu, "laptop", dir.path(), &[]);
    assert_eq!(code, Some(86));
    assert_eq!(status(&report, "platform").0, "fail");
    assert!(status(&report, "credentials").1.contains("long-term access keys"));
    let env = emu.workload_env("laptop", dir.path()).expect("env");
    let secret = env.iter().find(|(k, _)| k == "AWS_SECRET_ACCESS_KEY").map(|(_, v)| v.clone()).expect("secret");
    assert!(!report.to_string().contains(&secret) && !stderr.contains(&secret));
}

#[test]
fn irsa_with_hop_limit_one_warns_and_passes() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let (code, report, _) = check(&emu, "eks-irsa", dir.path(), &["--live"]);
    assert_eq!(code, Some(0), "{report}");
    let (s, summary, fix) = status(&report, "imds");
    assert_eq!(s, "warn");
    assert!(summary.contains("hop-limit-1 symptom"));
    assert!(fix.expect("fix").contains("HttpPutResponseHopLimit"));
    let (s, summary, _) = status(&report, "irsa-token");
    assert_eq!(s, "pass");
    assert!(summary.contains("subject system:serviceaccount:") && summary.contains("audience ok: true"), "{summary}");
    let token = std::fs::read_to_string(dir.path().join("eks-token")).expect("token");
    assert!(!report.to_string().contains(token.trim()), "the token must not be printed");
}

#[test]
#[ignore = "needs root: setpriv to another uid (scripts/test runs it)"]
fn irsa_token_unreadable_by_the_container_user_names_fs_group() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let env = emu.workload_env("eks-irsa", dir.path()).expect("env");
    let token = dir.path().join("eks-token");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let dir_mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(dir.path(), dir_mode).expect("chmod dir");
    let out = Run::bin("/usr/bin/setpriv".into())
        .envs(env)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(crate::support::gate_bin())
        .args(["check", "--json"])
        .run();
    let report: Value =
        serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {} {}", out.stdout(), out.stderr()));
    assert_eq!(out.code(), Some(86), "{report}");
    let (s, summary, fix) = status(&report, "irsa-token");
    assert_eq!(s, "fail");
    assert!(summary.contains("not readable by uid 65534"), "{summary}");
    assert!(fix.expect("fix").contains("fsGroup"));
}

#[test]
fn no_region_fails_and_skips_what_needs_one() {
    let out = Run::gate().env("AWS_EC2_METADATA_DISABLED", "true").args(["check", "--json"]).run();
    let report: Value = serde_json::from_str(out.stdout().trim()).expect("json");
    assert_eq!(out.code(), Some(86));
    assert_eq!(status(&report, "region").0, "fail");
    assert_eq!(status(&report, "credentials"), ("skip", "needs a region", None));
    assert_eq!(status(&report, "platform").0, "fail");
}

#[test]
fn offline_checks_only_the_baked_identity() {
    let out = Run::gate().args(["check", "--offline", "--allow-test-flavour", "--json"]).run();
    let report: Value = serde_json::from_str(out.stdout().trim()).expect("json");
    let ids: Vec<&str> =
        report["checks"].as_array().expect("checks").iter().map(|c| c["id"].as_str().expect("id")).collect();
    assert_eq!(ids, ["identity", "flavour"]);
    assert_eq!(status(&report, "identity").0, "pass");
    assert_eq!(status(&report, "flavour").0, "warn", "allowed, the test flavour still warns");
    assert_eq!(out.code(), Some(0));
}

/// The seller's release check (`check --offline`, run by Dockerfile.example's release
/// stage) refuses a test-flavour gate, so a test build cannot be shipped by mistake.
#[test]
fn offline_check_fails_on_the_test_flavour_unless_allowed() {
    let out = Run::gate().args(["check", "--offline", "--json"]).run();
    let report: Value = serde_json::from_str(out.stdout().trim()).expect("json");
    assert_eq!(out.code(), Some(86), "{}", out.stdout());
    assert_eq!(report["verdict"], "would-refuse");
    let (word, summary, fix) = status(&report, "flavour");
    assert_eq!(word, "fail", "{summary}");
    assert!(summary.starts_with("test flavour"), "{summary}");
    assert!(fix.is_some_and(|f| f.contains("--allow-test-flavour")), "{fix:?}");
    let text = Run::gate().args(["check", "--offline"]).run().expect_status(86).check();
    assert!(text.stdout().contains("FAIL    flavour"), "{}", text.stdout());
    // The release flavour of the same identity passes without the flag and says so in version --json.
    let release = crate::support::dist_dir().join("mpgate");
    Run::bin(release.clone()).args(["check", "--offline"]).run().expect_status(0).check();
    let version = Run::bin(release).args(["version", "--json"]).run().expect_status(0).check();
    let v: Value = serde_json::from_str(&version.stdout()).expect("version --json");
    assert_eq!(v["flavour"], "release");
    // The flag belongs to the offline check only.
    Run::gate().args(["check", "--allow-test-flavour"]).run().expect_status(2).expect_one_refusal_line().check();
}

/// The JSON schema (docs/check.md) is a contract for CI jobs: pin its keys, ids, order and values.
#[test]
fn json_schema_is_stable() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let (_, report, _) = check(&emu, "ecs-task", dir.path(), &[]);
    let mut keys: Vec<&String> = report.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["checks", "exit_code", "flavour", "mpgate_version", "not_verified", "schema_version", "verdict"]);
    assert_eq!(report["schema_version"], 2);
    assert!(["pass", "would-refuse", "could-not-tell", "unverified"]
        .contains(&report["verdict"].as_str().expect("verdict")));
    let ids: Vec<&str> =
        report["checks"].as_array().expect("checks").iter().map(|c| c["id"].as_str().expect("id")).collect();
    assert_eq!(
        ids,
        [
            "identity",
            "flavour",
            "overrides",
            "platform",
            "imds",
            "region",
            "irsa-token",
            "proxy",
            "credentials",
            "endpoint",
            "entitlement"
        ]
    );
    for c in report["checks"].as_array().expect("checks") {
        let mut k: Vec<&String> = c.as_object().expect("check").keys().collect();
        k.sort();
        assert_eq!(k, ["fix", "id", "method", "status", "summary"]);
        assert!(["pass", "warn", "fail", "skip", "unknown"].contains(&c["status"].as_str().expect("status")));
    }
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/check.md")).expect("docs/check.md");
    for id in ids {
        assert!(doc.contains(&format!("`{id}`")), "docs/check.md does not document check {id}");
    }
}

#[test]
fn text_report_has_no_colour_when_not_a_terminal() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = Run::gate()
        .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
        .args(["check", "--live"])
        .run()
        .expect_status(0)
        .check();
    assert!(!out.stdout().contains('\u{1b}'));
    assert!(out.stdout().contains("verdict: pass (exit 0)"));
    assert!(out.stdout().lines().any(|l| l.trim_start().starts_with("PASS") && l.contains("credentials")));
}

#[test]
fn node_role_instead_of_the_pods_role_is_named() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let (code, report, _) = check(&emu, "eks-node-role", dir.path(), &[]);
    assert_eq!(code, Some(86), "{report}");
    let (s, summary, fix) = status(&report, "credentials");
    assert_eq!(s, "fail");
    assert!(summary.contains("the instance role from IMDS"), "{summary}");
    assert!(fix.expect("fix").contains("node or instance role"));
    assert_eq!(status(&report, "imds").0, "pass");
}

/// Release flavour in the empty root, the Metering hostname pointed at a server whose certificate an
/// attacker CA signed: the endpoint check fails on TLS, naming the compiled-in roots.
#[test]
#[ignore = "needs root: unshare and chroot (scripts/test runs it)"]
fn release_check_reports_tls_failure_with_the_compiled_in_roots() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let root = crate::rootfs::rootfs("mpgate");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    std::fs::write(root.path().join("etc/hosts"), "127.0.0.79 metering.marketplace.us-east-1.amazonaws.com\n")
        .expect("hosts");
    let dir = scratch();
    let _fake = crate::tamper::FakeAws::start("127.0.0.79", dir.path());
    let env = emu.workload_env("ecs-task", dir.path()).expect("env");
    let out = crate::rootfs::in_chroot(root.path(), env).args(["check", "--json"]).run();
    let report: Value = serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stderr()));
    assert_eq!(out.code(), Some(86), "{report}");
    let (s, summary, fix) = status(&report, "endpoint");
    assert_eq!(s, "fail");
    assert!(
        summary.contains("https://metering.marketplace.us-east-1.amazonaws.com") && summary.contains("TLS"),
        "{summary}"
    );
    // Worded as the refusal `mpgate exec` gives for the same certificate (exit 82).
    let fix = fix.expect("fix");
    for needle in [
        "the TLS certificate presented for metering.marketplace.us-east-1.amazonaws.com did not verify",
        "intercepts TLS",
        "let metering.marketplace.us-east-1.amazonaws.com through",
        "compiled into mpgate",
    ] {
        assert!(fix.contains(needle), "{needle:?} missing from {fix:?}");
    }
    assert_eq!(status(&report, "flavour").0, "pass");
}

#[test]
fn live_check_names_a_missing_iam_permission() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let (code, report, _) = check(&emu, "ecs-task-no-iam", dir.path(), &["--live"]);
    assert_eq!(code, Some(86), "{report}");
    let summary = status(&report, "entitlement").1;
    assert!(
        summary.contains("AccessDeniedException") && summary.contains("grant aws-marketplace:RegisterUsage"),
        "{summary}"
    );
}

/// The seconds in "local clock is Ns ...".
fn drift_secs(summary: &str) -> u64 {
    let rest = summary.split("local clock is ").nth(1).expect("drift in summary");
    rest.split('s').next().and_then(|n| n.parse().ok()).expect("a number of seconds")
}

#[test]
fn a_skewed_clock_is_reported_against_the_endpoint_date() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    emu.set_wall_skew(600);
    let (code, report, _) = check(&emu, "ecs-task", dir.path(), &[]);
    assert_eq!(code, Some(86), "{report}");
    let (s, summary, fix) = status(&report, "endpoint");
    assert_eq!(s, "fail");
    assert!((590..=610).contains(&drift_secs(summary)) && summary.contains("behind the endpoint"), "{summary}");
    assert!(fix.expect("fix").contains("5 minutes"));
    emu.set_wall_skew(-90);
    let (code, report, _) = check(&emu, "ecs-task", dir.path(), &[]);
    assert_eq!(code, Some(88), "a warning leaves the verdict to the rows not verified: {report}");
    let (s, summary, _) = status(&report, "endpoint");
    assert_eq!(s, "warn");
    assert!((85..=95).contains(&drift_secs(summary)) && summary.contains("ahead of the endpoint"), "{summary}");
}

#[test]
fn sdk_custom_partition_variable_would_refuse_and_nothing_is_probed() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    for value in ["/nonexistent.json", ""] {
        let out = Run::gate()
            .envs(emu.workload_env("ecs-task", dir.path()).expect("env"))
            .env("SMITHY_CLIENT_SDK_CUSTOM_PARTITION", value)
            .args(["check", "--json"])
            .run();
        let report: Value =
            serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout()));
        assert_eq!(out.code(), Some(mpgate::error::Class::CheckWouldRefuse.exit_code().into()), "{report}");
        assert_eq!(report["verdict"], "would-refuse");
        let (s, summary, fix) = status(&report, "overrides");
        assert_eq!(s, "fail", "{value:?}");
        assert!(summary.contains("SMITHY_CLIENT_SDK_CUSTOM_PARTITION is set"), "{summary}");
        assert!(fix.is_some_and(|f| f.contains("unset SMITHY_CLIENT_SDK_CUSTOM_PARTITION")), "{fix:?}");
        assert_eq!(status(&report, "environment").0, "skip");
    }
    assert_eq!(emu.requests().len(), 0, "check probed AWS despite the partition override");
}
