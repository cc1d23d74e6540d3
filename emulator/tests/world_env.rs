//! The demo world survives JSON (the binary loads worlds from files), each credential kind gets
//! the environment its platform injects, and dropping the handle closes every port.

use mpgate_emulator::{Emulator, World};
use std::collections::HashMap;

#[test]
fn demo_world_round_trips_through_json() {
    let demo = World::demo();
    let json = serde_json::to_string(&demo).expect("serialize");
    let back: World = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, demo);
}

/// Every complete scenario in docs/emulator.md (a ```json block with no "…" placeholder that has
/// `accounts`) loads and starts: the documented examples are real scenario files.
#[test]
fn every_complete_scenario_in_the_docs_loads() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/emulator.md")).expect("doc");
    let blocks: Vec<&str> =
        doc.split("```json\n").skip(1).filter_map(|b| b.split("\n```").next()).filter(|b| !b.contains('…')).collect();
    let mut loaded = 0;
    for block in blocks.iter().filter(|b| b.contains("\"accounts\"")) {
        let world: World = serde_json::from_str(block).unwrap_or_else(|e| panic!("{e}:\n{block}"));
        drop(Emulator::start(world).unwrap_or_else(|e| panic!("{e}:\n{block}")));
        loaded += 1;
    }
    assert!(loaded >= 6, "only {loaded} scenarios found in docs/emulator.md");
}

#[test]
fn environment_per_workload() {
    let emu = Emulator::start(World::demo()).expect("start");
    let dir = tempfile::tempdir().expect("tmp");
    let env = |id: &str| -> HashMap<String, String> {
        let d = dir.path().join(id);
        std::fs::create_dir_all(&d).expect("mkdir");
        emu.workload_env(id, &d).expect("env").into_iter().collect()
    };
    let url = emu.url();
    let e = env("ecs-task");
    assert_eq!(e["AWS_ENDPOINT_URL"], url);
    assert_eq!(e["AWS_CONTAINER_CREDENTIALS_FULL_URI"], format!("{url}/ecs/credentials/ecs-task"));
    assert!(!e["AWS_CONTAINER_AUTHORIZATION_TOKEN"].is_empty());
    assert_eq!(e["ECS_CONTAINER_METADATA_URI_V4"], format!("{url}/ecs/metadata/ecs-task"));
    assert_eq!(e["AWS_EXECUTION_ENV"], "AWS_ECS_FARGATE");
    assert_eq!(e["AWS_REGION"], "us-east-1");
    assert_eq!(e["AWS_DEFAULT_REGION"], "us-east-1");
    assert_eq!(e["AWS_EC2_METADATA_DISABLED"], "true");

    let e = env("ecs-ec2-old-agent");
    assert_eq!(e["AWS_EXECUTION_ENV"], "AWS_ECS_EC2");
    assert!(!e.contains_key("AWS_REGION") && !e.contains_key("AWS_DEFAULT_REGION"));

    let e = env("eks-irsa");
    assert_eq!(e["AWS_ROLE_ARN"], "arn:aws:iam::111122223333:role/mpgate-irsa");
    assert!(std::path::Path::new(&e["AWS_WEB_IDENTITY_TOKEN_FILE"]).is_file());
    assert!(e["AWS_EC2_METADATA_SERVICE_ENDPOINT"].starts_with("http://127.0.0.1:"));

    let e = env("eks-pod-identity");
    assert_eq!(e["AWS_CONTAINER_CREDENTIALS_FULL_URI"], format!("{url}/pod-identity/credentials"));
    let tok = std::fs::read_to_string(&e["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).expect("token file");
    assert!(!tok.ends_with('\n'));

    let e = env("laptop");
    assert!(e["AWS_ACCESS_KEY_ID"].starts_with("AKIA"));
    assert!(!e.contains_key("AWS_SESSION_TOKEN"));

    let e = env("ec2-instance");
    assert!(e.contains_key("AWS_EC2_METADATA_SERVICE_ENDPOINT"));
    assert!(!e.keys().any(|k| k.starts_with("AWS_CONTAINER") || k == "AWS_REGION"));

    assert!(emu.workload_env("nope", dir.path()).is_err());
}

#[test]
fn task_metadata_carries_the_region_in_the_task_arn() {
    let emu = Emulator::start(World::demo()).expect("start");
    let addr = emu.url().trim_start_matches("http://").to_string();
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&addr).expect("connect");
    let req = format!("GET /ecs/metadata/eu-task/task HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let body = out.split_once("\r\n\r\n").expect("body").1;
    let j: serde_json::Value = serde_json::from_str(body).expect("json");
    assert!(j["TaskARN"].as_str().expect("arn").starts_with("arn:aws:ecs:eu-west-1:111122223333:task/"));
    assert_eq!(j["LaunchType"], "FARGATE");
}

/// `mpgate-emulator env WORKLOAD --url URL --dir DIR` prints eval-able exports whose token files exist.
#[test]
fn env_subcommand_prints_exports_for_eval() {
    let bin = env!("CARGO_BIN_EXE_mpgate-emulator");
    let emu = Emulator::start(World::demo()).expect("start");
    let dir = tempfile::tempdir().expect("tmp");
    let out = std::process::Command::new(bin)
        .args(["env", "eks-irsa", "--url", &emu.url(), "--dir"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.lines().all(|l| l.starts_with("export ")), "{text}");
    assert!(text.contains(&format!("export AWS_ENDPOINT_URL='{}'", emu.url())), "{text}");
    let file = text
        .lines()
        .find_map(|l| l.strip_prefix("export AWS_WEB_IDENTITY_TOKEN_FILE='"))
        .and_then(|v| v.strip_suffix('\''))
        .expect("token file");
    assert!(std::path::Path::new(file).is_file());
    let bad = std::process::Command::new(bin).args(["env", "nope", "--url", &emu.url()]).output().expect("run");
    assert_eq!(bad.status.code(), Some(2));
}
