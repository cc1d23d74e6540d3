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

/// The json blocks of docs/emulator.md whose first line starts with `prefix`.
fn doc_block(prefix: &str) -> serde_json::Value {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/emulator.md")).expect("doc");
    let block = doc
        .split("```json\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .find(|b| b.starts_with(prefix))
        .unwrap_or_else(|| panic!("no json block starting {prefix:?} in docs/emulator.md"));
    serde_json::from_str(block).unwrap_or_else(|e| panic!("{e}:\n{block}"))
}

/// `shown` is a complete template of `T`: it parses, shows every field `T` has, each field in
/// `required` cannot be left out, and every other one shows the value it takes when left out.
fn pin_template<T>(what: &str, shown: &serde_json::Value, required: &[&str])
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let parse = |v: &serde_json::Value| serde_json::from_value::<T>(v.clone());
    let full = parse(shown).unwrap_or_else(|e| panic!("{what}: {e}"));
    let fields = shown.as_object().unwrap_or_else(|| panic!("{what} is not an object"));
    let real = serde_json::to_value(&full).expect("serialize");
    let real: Vec<&String> = real.as_object().expect("object").keys().collect();
    let mut listed: Vec<&String> = fields.keys().collect();
    listed.sort();
    assert_eq!(listed, real, "{what}: the template must show every field");
    for key in fields.keys() {
        let mut without = fields.clone();
        without.remove(key);
        match (parse(&serde_json::Value::Object(without)), required.contains(&key.as_str())) {
            (Ok(_), true) => panic!("{what}.{key} is documented as required, but may be left out"),
            (Err(e), false) => panic!("{what}.{key} is documented as optional, but cannot be left out: {e}"),
            (Ok(default), false) => {
                assert_eq!(default, full, "{what}.{key}: the template shows {} but the default differs", fields[key])
            }
            (Err(_), true) => {}
        }
    }
}

/// docs/emulator.md's scenario template shows the real defaults (`inject_region_env` and
/// `imds_reachable` are false) and which fields are required.
#[test]
fn the_scenario_template_shows_the_real_defaults() {
    use mpgate_emulator::{Account, License, LicenseEntitlement, Product, Quotas, RegistrationToken, Workload};
    let world = doc_block("{\n  \"accounts\"");
    pin_template::<World>("world", &world, &["accounts", "products", "workloads"]);
    pin_template::<Account>("accounts[0]", &world["accounts"][0], &["id"]);
    pin_template::<Product>("products[0]", &world["products"][0], &["code", "key_versions"]);
    pin_template::<Workload>(
        "workloads[0]",
        &world["workloads"][0],
        &["id", "platform", "region", "account", "credential"],
    );
    pin_template::<Quotas>("quotas", &world["quotas"], &[]);
    let token = doc_block("{ \"token\"");
    pin_template::<RegistrationToken>("registration_tokens[0]", &token, &["token", "product_code", "account"]);
    let license = doc_block("{ \"arn\"");
    pin_template::<License>("licenses[0]", &license, &["arn", "product_sku", "account", "begin", "entitlements"]);
    pin_template::<LicenseEntitlement>("entitlements[0]", &license["entitlements"][0], &["name", "unit"]);
}

/// A field the emulator does not know is refused, naming its path, wherever it is.
#[test]
fn unknown_scenario_fields_are_refused_with_their_path() {
    let world = doc_block("{\n  \"accounts\"");
    let cases = [
        ("/typo_top", "typo_top"),
        ("/workloads/0/imds_reachble", "workloads[0].imds_reachble"),
        ("/products/0/dimension", "products[0].dimension"),
        ("/accounts/0/subscription", "accounts[0].subscription"),
        ("/quotas/enable", "quotas.enable"),
    ];
    for (pointer, path) in cases {
        let mut bad = world.clone();
        let (parent, key) = pointer.rsplit_once('/').expect("pointer");
        bad.pointer_mut(parent).and_then(|v| v.as_object_mut()).expect(parent).insert(key.into(), true.into());
        let text = serde_json::to_string_pretty(&bad).expect("serialize");
        let err = World::from_json(&text).expect_err(path);
        assert!(err.starts_with(&format!("{path}: unknown field `{key}`")), "{path}: {err}");
    }
    let mut irsa = world.clone();
    irsa["workloads"][0]["credential"] =
        serde_json::json!({ "Irsa": { "role_arn": "arn:aws:iam::1:role/r", "role": "x" } });
    let err = World::from_json(&serde_json::to_string(&irsa).expect("json")).expect_err("credential");
    assert!(err.starts_with("workloads[0].credential.Irsa.role: unknown field `role`"), "{err}");
    let mut ent = doc_block("{ \"arn\"");
    ent["entitlements"][0]["maxcount"] = 3.into();
    let mut w = world;
    w["licenses"] = serde_json::json!([ent]);
    let err = World::from_json(&serde_json::to_string(&w).expect("json")).expect_err("entitlement");
    assert!(err.starts_with("licenses[0].entitlements[0].maxcount: unknown field `maxcount`"), "{err}");
}

/// Bound to every address (a service container), the emulator hands workloads loopback URLs: the
/// SDKs accept a plain-HTTP container-credentials URI only on loopback, and `0.0.0.0` is not.
#[test]
fn listening_on_every_address_gives_workloads_loopback_urls() {
    let listen = mpgate_emulator::Listen { main: "0.0.0.0:0".parse().expect("addr"), ..Default::default() };
    let emu = Emulator::start_with(World::demo(), listen).expect("start");
    assert!(emu.url().starts_with("http://127.0.0.1:"), "{}", emu.url());
    let dir = tempfile::tempdir().expect("tmp");
    let env: HashMap<String, String> = emu.workload_env("ecs-task", dir.path()).expect("env").into_iter().collect();
    assert!(env["AWS_CONTAINER_CREDENTIALS_FULL_URI"].starts_with("http://127.0.0.1:"), "{env:?}");
    assert_eq!(env["AWS_ENDPOINT_URL"], emu.url());
}
