//! The hourly gate, end to end, in each environment the emulator models.

use crate::support::{scratch, workload_bin, Outcome, Report, Run};
use mpgate_emulator::{Emulator, Fault, World};
use std::path::Path;
use std::time::Duration;

pub const PAID: &str = "8f3kq2demopaid0mpgate01";
pub const FREE: &str = "5x7wq9demofree0mpgate01";

/// Run `mpgate exec -- workload report <dir>/report.json` as `workload` of `emu`.
pub fn gate_as(emu: &Emulator, workload: &str, dir: &Path) -> Run {
    let env = emu.workload_env(workload, dir).expect("workload env");
    Run::gate()
        .envs(env)
        .env("MPGATE_TERMINATION_LOG", dir.join("termination-log"))
        .env("MPGATE_DEADLINE", "20s")
        .arg("exec")
}

pub fn with_workload(run: Run, dir: &Path) -> Run {
    run.arg("--").arg(workload_bin()).arg("report").arg(dir.join("report.json"))
}

/// Admitted: the workload ran, saw the verdict, and the emulator saw exactly one matching call.
fn assert_admitted(emu: &Emulator, out: &Outcome, dir: &Path, code: &str, tier: &str, version: i64) -> Report {
    assert_eq!(out.code(), Some(0), "not admitted:\n{}", out.stderr());
    let report = Report::read(&dir.join("report.json"));
    assert_eq!(report.var("MPGATE_PRODUCT_CODE").as_deref(), Some(code));
    assert_eq!(report.var("MPGATE_TIER").as_deref(), Some(tier));
    assert_eq!(report.var("MPGATE_PRICING_MODEL").as_deref(), Some("hourly"));
    assert_eq!(report.var("MPGATE_PUBLIC_KEY_VERSION"), Some(version.to_string()));
    let signature = report.var("MPGATE_SIGNATURE").expect("signature handed over");
    assert_eq!(signature.split('.').count(), 3);
    let calls = emu.bodies("RegisterUsage");
    let last = calls.last().expect("a RegisterUsage call");
    assert_eq!(last["ProductCode"], code);
    assert_eq!(last["PublicKeyVersion"], version);
    assert_eq!(last["Nonce"].as_str(), report.var("MPGATE_NONCE").as_deref(), "nonce handed over is the one sent");
    let nonce = last["Nonce"].as_str().expect("nonce sent");
    assert!(nonce.starts_with("mpgate1:") && nonce.len() <= 255, "{nonce}");
    report
}

fn admitted(workload: &str, stderr_needles: &[&str]) {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let mut out = with_workload(gate_as(&emu, workload, dir.path()), dir.path()).run();
    for n in stderr_needles {
        out = out.expect_stderr_contains(n);
    }
    let out = out.check();
    assert_admitted(&emu, &out, dir.path(), PAID, "paid", 2);
    assert_eq!(emu.bodies("RegisterUsage").len(), 1, "one RegisterUsage per start");
}

#[test]
fn ecs_task_role_is_admitted() {
    admitted(
        "ecs-task",
        &["admitted: product 8f3kq2demopaid0mpgate01", "credentials from the ECS task role", "region from AWS_REGION"],
    );
}

#[test]
fn a_role_arn_with_a_blank_token_file_is_still_an_irsa_misconfiguration() {
    // The IRSA source is built only when AWS_WEB_IDENTITY_TOKEN_FILE or AWS_ROLE_ARN is set (building
    // it costs an STS client); with a role ARN it must still be tried, and fail, before the container
    // endpoint, as in aws-config's chain.
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let gate = gate_as(&emu, "ecs-task", dir.path())
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", " ")
        .env("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/irsa");
    with_workload(gate, dir.path())
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("cannot load credentials from EKS IRSA")
        .check();
    assert!(emu.bodies("RegisterUsage").is_empty(), "refused before any metering call");
}

#[test]
fn ecs_on_ec2_without_region_variables_uses_task_metadata() {
    admitted("ecs-ec2-old-agent", &["region from ECS task metadata"]);
}

#[test]
fn a_container_endpoint_that_refuses_the_token_is_a_misconfiguration() {
    // The ECS agent answers 403 to a wrong authorization token: final (82), with the task-role fix.
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path())
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-the-agents-token")
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("cannot load credentials from the ECS task role")
        .expect_stderr_contains("403")
        .expect_stderr_contains("taskRoleArn")
        .check();
    assert!(emu.requests().iter().any(|r| r.op == "EcsCredentials" && r.status == 403), "{:?}", emu.requests());
    assert!(emu.requests().iter().all(|r| r.op != "RegisterUsage"), "{:?}", emu.requests());
}

#[test]
fn an_irsa_role_sts_refuses_is_refused_with_stss_request_id() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = with_workload(gate_as(&emu, "eks-irsa", dir.path()), dir.path())
        .env("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/someone-else")
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("cannot load credentials from EKS IRSA")
        .check();
    assert!(
        emu.requests().iter().any(|r| r.op == "AssumeRoleWithWebIdentity" && r.status == 403),
        "{:?}",
        emu.requests()
    );
    // The emulator's ids are UUID-shaped (8-4-4-4-12 hex digits), as STS's are.
    let id = out
        .stderr()
        .split("(request id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default()
        .to_string();
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert!(
        groups == [8, 4, 4, 4, 12] && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "no STS request id in:\n{}",
        out.stderr()
    );
}

#[test]
fn eks_irsa_is_admitted_through_sts() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = with_workload(gate_as(&emu, "eks-irsa", dir.path()), dir.path())
        .run()
        .expect_stderr_contains("credentials from EKS IRSA")
        .check();
    assert_admitted(&emu, &out, dir.path(), PAID, "paid", 2);
    let ops: Vec<String> = emu.requests().iter().map(|r| r.op.clone()).collect();
    assert_eq!(ops, ["AssumeRoleWithWebIdentity", "RegisterUsage"], "IRSA: one STS call, one metering call");
}

#[test]
fn eks_irsa_without_region_variables_uses_imds_region() {
    admitted("eks-irsa-no-region", &["region from EC2 instance metadata", "credentials from EKS IRSA"]);
}

fn refused(emu: &Emulator, workload: &str, status: i32, needles: &[&str]) -> Outcome {
    let dir = scratch();
    let mut out = with_workload(gate_as(emu, workload, dir.path()), dir.path())
        .run()
        .expect_status(status)
        .expect_one_refusal_line()
        .expect_stdout_empty();
    for n in needles {
        out = out.expect_stderr_contains(n);
    }
    let out = out.check();
    assert!(!dir.path().join("report.json").exists(), "the workload must not run");
    out
}

#[test]
fn ec2_instance_role_is_refused_as_misconfigured() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    refused(&emu, "ec2-instance", 82, &["PlatformNotSupportedException", "instance role"]);
}

#[test]
fn eks_node_role_is_refused_with_the_irsa_fix() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    refused(&emu, "eks-node-role", 82, &["PlatformNotSupportedException", "eks.amazonaws.com/role-arn"]);
}

#[test]
fn eks_pod_identity_is_refused_with_the_irsa_fix() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    refused(
        &emu,
        "eks-pod-identity",
        82,
        &["signed with EKS Pod Identity; AWS Marketplace Metering does not accept it", "use IRSA"],
    );
}

#[test]
fn laptop_with_static_keys_is_refused_as_platform_not_supported() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let out = refused(&emu, "laptop", 82, &["PlatformNotSupportedException", "long-term access keys"]);
    let dir = scratch();
    let env = emu.workload_env("laptop", dir.path()).expect("env");
    let secret = env.iter().find(|(k, _)| k == "AWS_SECRET_ACCESS_KEY").map(|(_, v)| v.clone()).expect("secret");
    assert!(!out.stderr().contains(&secret), "the secret key must never be printed");
}

#[test]
fn a_profile_naming_a_credential_source_still_reaches_it_and_is_refused_as_a_profile() {
    // The profile provider's `EcsContainer` and `Ec2InstanceMetadata` fallbacks are built on first
    // use (src/platform/credentials.rs, BuiltOnUse): a profile that names one must still get there.
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        "[default]\nrole_arn = arn:aws:iam::111122223333:role/laptop\ncredential_source = EcsContainer\n",
    )
    .expect("profile");
    with_workload(gate_as(&emu, "ecs-task", dir.path()).env("AWS_CONFIG_FILE", &config), dir.path())
        .run()
        // 81: the emulator has no STS AssumeRole, and its InvalidAction answer is not a known
        // permanent refusal. What matters here is that the profile's source was reached.
        .expect_status(81)
        .expect_one_refusal_line()
        .expect_stderr_contains("from a shared AWS profile file")
        .check();
    let ops: Vec<String> = emu.requests().iter().map(|r| r.op.clone()).collect();
    // The container endpoint answered the profile's source; the emulator has no AssumeRole.
    assert_eq!(ops, ["EcsCredentials", "AssumeRole"]);
    assert!(!dir.path().join("report.json").exists(), "the workload must not run");
}

#[test]
fn the_token_and_credentials_never_reach_stderr() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path()).run().check();
    let report = assert_admitted(&emu, &out, dir.path(), PAID, "paid", 2);
    let token = report.var("MPGATE_SIGNATURE").expect("token");
    let auth = report.var("AWS_CONTAINER_AUTHORIZATION_TOKEN").expect("auth token");
    for secret in [token.as_str(), auth.as_str(), token.rsplit('.').next().expect("sig")] {
        assert!(!out.stderr().contains(secret), "stderr leaks {secret:.12}...");
    }
}

#[test]
fn no_credentials_at_all_is_misconfigured() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = with_workload(
        Run::gate()
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", emu.url())
            .arg("exec"),
        dir.path(),
    )
    .run()
    .expect_status(82)
    .expect_one_refusal_line()
    .expect_stderr_contains("no AWS credentials found")
    .check();
    drop(out);
    assert!(emu.bodies("RegisterUsage").is_empty());
}

#[test]
fn no_region_at_all_is_misconfigured() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    with_workload(Run::gate().env("AWS_EC2_METADATA_DISABLED", "true").arg("exec"), dir.path())
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("no AWS region found")
        .expect_stderr_contains("set AWS_REGION")
        .check();
    assert!(emu.requests().is_empty());
}

#[test]
fn unsubscribed_account_is_not_entitled_and_says_so_in_the_termination_log() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    std::fs::write(dir.path().join("termination-log"), "").expect("create termination log");
    let out = with_workload(gate_as(&emu, "unsubscribed-task", dir.path()), dir.path())
        .run()
        .expect_status(80)
        .expect_one_refusal_line()
        .expect_stderr_contains("CustomerNotEntitledException")
        .expect_stderr_contains("request id ")
        .expect_stderr_contains("must subscribe to product 8f3kq2demopaid0mpgate01")
        .expect_stderr_contains(&format!("signed by AWS account {}", mpgate_emulator::UNSUBSCRIBED_ACCOUNT))
        .check();
    let log = std::fs::read_to_string(dir.path().join("termination-log")).expect("termination log");
    assert_eq!(log.trim_end(), out.last_line());
    assert_eq!(emu.bodies("RegisterUsage").len(), 1, "not entitled is final: no retry");
}

/// EACCES on the projected token (a non-root container without `fsGroup`): the refusal names the
/// file and the uid and gid that cannot read it, as `mpgate check` does, and nothing reaches STS.
#[test]
#[ignore = "needs root: setpriv to another uid (scripts/test runs it)"]
fn irsa_token_unreadable_by_the_container_user_names_the_path_uid_and_gid() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let token = dir.path().join("eks-token");
    let env = emu.workload_env("eks-irsa", dir.path()).expect("env");
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod dir");
    Run::bin("/usr/bin/setpriv".into())
        .envs(env)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(crate::support::gate_bin())
        .args(["exec", "--", "/bin/true"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("mpgate: misconfigured: cannot load credentials from EKS IRSA")
        .expect_stderr_contains(&format!("{} is not readable by uid 65534 (gid 65534)", token.display()))
        .expect_stderr_contains("fsGroup")
        .check();
    assert!(emu.requests().iter().all(|r| r.op != "AssumeRoleWithWebIdentity" && r.op != "RegisterUsage"));
}

#[test]
fn wrong_region_is_refused_and_names_the_region_source() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    with_workload(gate_as(&emu, "eu-task", dir.path()).env("AWS_REGION", "us-east-1"), dir.path())
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("InvalidRegionException")
        .expect_stderr_contains("made in us-east-1 (from AWS_REGION)")
        .check();
}

#[test]
fn unpublished_product_code_is_refused() {
    let mut world = World::demo();
    world.products.retain(|p| p.code != PAID);
    let emu = Emulator::start(world).expect("emulator");
    refused(&emu, "ecs-task", 82, &["InvalidProductCodeException", "wrong MPGATE_PRODUCT_CODE"]);
}

#[test]
fn newer_key_version_not_yet_active_falls_back_to_the_older_one() {
    let mut world = World::demo();
    world.products.iter_mut().filter(|p| p.code == PAID).for_each(|p| p.key_versions = vec![1]);
    let emu = Emulator::start(world).expect("emulator");
    let dir = scratch();
    let out = with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path()).run().check();
    assert_admitted(&emu, &out, dir.path(), PAID, "paid", 1);
    let versions: Vec<i64> =
        emu.bodies("RegisterUsage").iter().map(|c| c["PublicKeyVersion"].as_i64().expect("version")).collect();
    assert_eq!(versions, [2, 1]);
}

#[test]
fn stale_key_versions_are_refused_with_the_rebuild_advice() {
    let mut world = World::demo();
    world.products.iter_mut().filter(|p| p.code == PAID).for_each(|p| p.key_versions = vec![7]);
    let emu = Emulator::start(world).expect("emulator");
    refused(&emu, "ecs-task", 82, &["InvalidPublicKeyVersionException", "key version(s) [2, 1]", "rebuild the image"]);
    assert_eq!(emu.bodies("RegisterUsage").len(), 2);
}

#[test]
fn expired_key_version_still_admits_with_a_warning() {
    let mut world = World::demo();
    world.products.iter_mut().filter(|p| p.code == PAID).for_each(|p| p.expired_versions = vec![2]);
    let emu = Emulator::start(world).expect("emulator");
    let dir = scratch();
    let out = with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path())
        .run()
        .expect_stderr_contains("mpgate: warning: AWS reports key version 2 of 8f3kq2demopaid0mpgate01 expired")
        .check();
    assert_admitted(&emu, &out, dir.path(), PAID, "paid", 2);
}

#[test]
fn throttled_three_times_then_admitted() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    for _ in 0..3 {
        emu.inject("RegisterUsage", Fault::Throttle);
    }
    let dir = scratch();
    let out = with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path()).run().check();
    assert_admitted(&emu, &out, dir.path(), PAID, "paid", 2);
    assert_eq!(emu.bodies("RegisterUsage").len(), 4);
}

#[test]
fn server_errors_then_admitted() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    emu.inject("RegisterUsage", Fault::InternalError);
    emu.inject("RegisterUsage", Fault::Status(503, "ServiceUnavailable".into()));
    let dir = scratch();
    let out = with_workload(gate_as(&emu, "ecs-task", dir.path()), dir.path()).run().check();
    assert_admitted(&emu, &out, dir.path(), PAID, "paid", 2);
    assert_eq!(emu.bodies("RegisterUsage").len(), 3);
}

#[test]
fn endless_throttling_ends_at_the_deadline_as_cannot_verify() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    for _ in 0..200 {
        emu.inject("RegisterUsage", Fault::Throttle);
    }
    let dir = scratch();
    // 9 s: the first retry comes 1-5 s in and the next at most 4 s later, so at least three attempts.
    let out = with_workload(gate_as(&emu, "ecs-task", dir.path()).arg("--deadline").arg("9s"), dir.path())
        .run()
        .expect_status(81)
        .expect_one_refusal_line()
        .expect_stderr_contains("within the 9s start-up deadline")
        .expect_stderr_contains("ThrottlingException")
        .check();
    assert!(out.elapsed < Duration::from_secs(14), "deadline overrun: {:?}", out.elapsed);
    assert!(emu.bodies("RegisterUsage").len() >= 3, "retried inside the deadline");
}

#[test]
fn a_hanging_endpoint_ends_at_the_deadline() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    emu.inject("RegisterUsage", Fault::Hang);
    let dir = scratch();
    let out = with_workload(gate_as(&emu, "ecs-task", dir.path()).arg("--deadline").arg("2s"), dir.path())
        .run()
        .expect_status(81)
        .expect_one_refusal_line()
        .expect_stderr_contains("RegisterUsage attempt 1")
        .check();
    assert!(out.elapsed < Duration::from_secs(6), "deadline overrun: {:?}", out.elapsed);
}

#[test]
fn run_time_choice_of_a_trusted_free_code_yields_the_free_tier() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out =
        with_workload(gate_as(&emu, "ecs-task", dir.path()).env("MPGATE_PRODUCT_CODE", FREE), dir.path()).run().check();
    assert_admitted(&emu, &out, dir.path(), FREE, "free", 1);
}

#[test]
fn run_time_choice_outside_the_baked_list_is_refused_before_any_call() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    with_workload(gate_as(&emu, "ecs-task", dir.path()).env("MPGATE_PRODUCT_CODE", "someothercode123"), dir.path())
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("\"someothercode123\" was requested at run time but is not one this image trusts")
        .check();
    assert!(emu.requests().is_empty(), "nothing sent for an untrusted code");
}

#[test]
fn buyer_set_verdict_variables_are_replaced() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let out = with_workload(
        gate_as(&emu, "ecs-task", dir.path()).env("MPGATE_TIER", "enterprise").env("MPGATE_SIGNATURE", "forged"),
        dir.path(),
    )
    .run()
    .check();
    let report = assert_admitted(&emu, &out, dir.path(), PAID, "paid", 2);
    assert_ne!(report.var("MPGATE_SIGNATURE").as_deref(), Some("forged"));
    assert_eq!(report.env.iter().filter(|(k, _)| k == b"MPGATE_TIER").count(), 1);
}

#[test]
fn missing_iam_permission_names_the_action_and_the_managed_policy() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    refused(
        &emu,
        "ecs-task-no-iam",
        82,
        &["AccessDeniedException", "grant aws-marketplace:RegisterUsage", "AWSMarketplaceMeteringRegisterUsage"],
    );
}
