//! The `deploy/` examples: every JSON and YAML file parses, sets only run-time variables that
//! docs/configuration.md says mpgate reads, and uses the credentials AWS Marketplace accepts (the ECS
//! task role, EKS IRSA) with exactly the IAM actions of its pricing model.

use super::{doc_variables, is_variable, read_repo_file, repo_file};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

fn deploy_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("deploy/").map(|e| e.expect("entry").path()) {
        if entry.is_dir() {
            deploy_files(&entry, out);
        } else if matches!(entry.extension().and_then(|e| e.to_str()), Some("json" | "yaml" | "yml")) {
            out.push(entry);
        }
    }
}

/// Every document of a deploy file, as JSON values (YAML files may hold several, separated by `---`).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read");
    let name = path.display();
    if path.extension().is_some_and(|e| e == "json") {
        return vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: invalid JSON: {e}"))];
    }
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{name}: invalid YAML: {e}")))
        .collect()
}

pub(super) fn doc(rel: &str) -> Vec<Value> {
    documents(&repo_file(rel))
}

/// Every string in a document, keys included, that looks like a variable name: how an example sets a
/// variable (`{"name": "MPGATE_DEADLINE", ...}` in ECS and Kubernetes, a map key in a values file).
fn variables_in(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) if is_variable(s) => {
            out.insert(s.clone());
        }
        Value::Array(items) => items.iter().for_each(|v| variables_in(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                if is_variable(k) {
                    out.insert(k.clone());
                }
                variables_in(v, out);
            }
        }
        _ => {}
    }
}

/// Run-time inputs only: build-time ones are baked (setting them in a deployment does nothing) and the
/// test-flavour endpoint overrides must never appear in a deployment.
fn run_time_variables() -> BTreeSet<String> {
    doc_variables("## Run time", "### Test flavour only")
}

#[test]
fn run_time_variable_list_is_read_from_the_docs() {
    let vars = run_time_variables();
    for expected in ["MPGATE_DEADLINE", "MPGATE_TERMINATION_LOG", "AWS_REGION", "AWS_ROLE_ARN"] {
        assert!(vars.contains(expected), "{expected} missing from the parsed run-time list {vars:?}");
    }
    for not_run_time in ["MPGATE_PRICING_MODEL", "MPGATE_PUBLIC_KEYS", "MPGATE_TIER", "AWS_ENDPOINT_URL"] {
        assert!(!vars.contains(not_run_time), "{not_run_time} is not a run-time input, parsed list {vars:?}");
    }
}

#[test]
fn deploy_examples_parse_and_set_only_variables_mpgate_reads() {
    let mut files = Vec::new();
    deploy_files(&repo_file("deploy"), &mut files);
    assert!(files.len() >= 8, "expected the ECS, Kubernetes, Helm and IAM examples, found {files:?}");
    let known = run_time_variables();
    let mut seen = BTreeSet::new();
    for file in &files {
        let mut vars = BTreeSet::new();
        documents(file).iter().for_each(|d| variables_in(d, &mut vars));
        let unknown: Vec<_> = vars.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "{} sets {unknown:?}, which mpgate does not read (docs/configuration.md)",
            file.display()
        );
        seen.extend(vars);
    }
    assert!(seen.contains("MPGATE_DEADLINE") && seen.contains("AWS_REGION"), "the examples set variables: {seen:?}");
    // Negative control: the walk finds a variable wherever an example would put it.
    let mut probe = BTreeSet::new();
    variables_in(&serde_json::json!({"env": [{"name": "MPGATE_SKIP"}], "MPGATE_X": 1}), &mut probe);
    assert_eq!(probe, BTreeSet::from(["MPGATE_SKIP".to_string(), "MPGATE_X".to_string()]));
}

fn is_role_arn(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.starts_with("arn:aws:iam::") && s.contains(":role/"))
}

#[test]
fn ecs_task_definition_uses_a_task_role_and_keeps_the_gate_entrypoint() {
    let [task] = doc("deploy/ecs/task-definition.json").try_into().expect("one document");
    assert!(is_role_arn(&task["taskRoleArn"]), "RegisterUsage is signed with the task role: taskRoleArn must be set");
    assert_ne!(task["taskRoleArn"], task["executionRoleArn"], "the execution role only pulls images and writes logs");
    let containers = task["containerDefinitions"].as_array().expect("containerDefinitions");
    assert!(!containers.is_empty());
    for c in containers {
        assert!(c.get("entryPoint").is_none(), "entryPoint replaces the image's ENTRYPOINT (the gate): {c}");
        assert!(c["user"].as_str().is_some_and(|u| !u.starts_with('0') && u != "root"), "non-root user: {c}");
    }
}

#[test]
fn kubernetes_service_account_carries_irsa_and_the_deployment_uses_it() {
    let docs = doc("deploy/kubernetes/deployment.yaml");
    let of_kind = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind}"));
    let sa = of_kind("ServiceAccount");
    assert!(is_role_arn(&sa["metadata"]["annotations"][IRSA_ANNOTATION]), "IRSA annotation on {sa}");
    let pod = &of_kind("Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], sa["metadata"]["name"], "the pod uses the IRSA service account");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["securityContext"]["fsGroup"].is_u64(), "fsGroup makes the IRSA token readable by a non-root uid");
    for c in pod["containers"].as_array().expect("containers") {
        assert!(c.get("command").is_none(), "command: replaces the image's ENTRYPOINT (the gate): {c}");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log", "where mpgate writes the refusal line");
    }
}

#[test]
fn helm_values_annotate_the_service_account_for_irsa() {
    let [values] = doc("deploy/helm/values.yaml").try_into().expect("one document");
    assert!(is_role_arn(&values["serviceAccount"]["annotations"][IRSA_ANNOTATION]), "{values}");
    let text = read_repo_file("deploy/helm/values.yaml");
    for baked in ["productCode", "publicKey", "pricingModel"] {
        assert!(!text.contains(baked), "the product identity is baked, never a Helm value ({baked})");
    }
}

fn actions(policy: &Value) -> BTreeSet<String> {
    assert_eq!(policy["Version"], "2012-10-17");
    let mut out = BTreeSet::new();
    for statement in policy["Statement"].as_array().expect("Statement") {
        assert_eq!(statement["Effect"], "Allow");
        match &statement["Action"] {
            Value::String(a) => out.extend([a.clone()]),
            Value::Array(list) => out.extend(list.iter().map(|a| a.as_str().expect("action").to_string())),
            other => panic!("Action {other}"),
        }
    }
    out
}

#[test]
fn iam_policies_grant_exactly_the_actions_of_their_pricing_model() {
    let register = ["aws-marketplace:RegisterUsage"];
    let meter = ["aws-marketplace:MeterUsage"];
    let license = [
        "license-manager:CheckoutLicense",
        "license-manager:CheckInLicense",
        "license-manager:ExtendLicenseConsumption",
        "license-manager:GetLicense",
    ];
    let expected: [(&str, &[&str]); 4] =
        [("hourly", &register), ("monthly", &register), ("custom-metering", &meter), ("contract", &license)];
    for (model, want) in expected {
        let [policy] = doc(&format!("deploy/iam/policy-{model}.json")).try_into().expect("one document");
        let want: BTreeSet<String> = want.iter().map(|a| a.to_string()).collect();
        assert_eq!(actions(&policy), want, "deploy/iam/policy-{model}.json");
    }
    let mut files = Vec::new();
    deploy_files(&repo_file("deploy/iam"), &mut files);
    for f in files.iter().filter_map(|f| f.file_stem()?.to_str()?.strip_prefix("policy-").map(str::to_string)) {
        assert!(expected.iter().any(|(m, _)| *m == f), "deploy/iam/policy-{f}.json has no expected action list here");
    }
    let [ecs] = doc("deploy/iam/trust-ecs-task.json").try_into().expect("one document");
    assert_eq!(ecs["Statement"][0]["Principal"]["Service"], "ecs-tasks.amazonaws.com");
    let [irsa] = doc("deploy/iam/trust-irsa.json").try_into().expect("one document");
    assert_eq!(actions(&irsa), BTreeSet::from(["sts:AssumeRoleWithWebIdentity".to_string()]));
    let condition = irsa["Statement"][0]["Condition"]["StringEquals"].as_object().expect("StringEquals");
    assert!(condition
        .iter()
        .any(|(k, v)| k.ends_with(":sub") && v.as_str().is_some_and(|s| s.starts_with("system:serviceaccount:"))));
    assert!(condition.iter().any(|(k, v)| k.ends_with(":aud") && v == "sts.amazonaws.com"));
}

/// The IRSA trust policy of each partition names that partition's ARN prefix and its EKS OIDC
/// issuer's DNS suffix in the provider and in every condition key; the permission policies name no
/// ARN, so they serve every partition.
#[test]
fn irsa_trust_policies_use_their_partitions_arn_prefix() {
    for (file, prefix, issuer) in [
        ("trust-irsa", "arn:aws:iam::", ".amazonaws.com/id/"),
        ("trust-irsa-aws-cn", "arn:aws-cn:iam::", ".amazonaws.com.cn/id/"),
        ("trust-irsa-aws-us-gov", "arn:aws-us-gov:iam::", "oidc.eks.us-gov-"),
    ] {
        let [trust] = doc(&format!("deploy/iam/{file}.json")).try_into().expect("one document");
        assert_eq!(actions(&trust), BTreeSet::from(["sts:AssumeRoleWithWebIdentity".to_string()]), "{file}");
        let provider = trust["Statement"][0]["Principal"]["Federated"].as_str().expect("Federated");
        assert!(provider.starts_with(prefix) && provider.contains(":oidc-provider/oidc.eks."), "{file}: {provider}");
        let host = provider.split_once(":oidc-provider/").expect("provider").1;
        assert!(host.contains(issuer), "{file}: {host}");
        let condition = trust["Statement"][0]["Condition"]["StringEquals"].as_object().expect("StringEquals");
        assert_eq!(condition.len(), 2, "{file}");
        assert!(condition.keys().all(|k| k.starts_with(host)), "{file}: condition keys name the provider {host}");
    }
    for model in ["hourly", "monthly", "custom-metering", "contract"] {
        let text = read_repo_file(&format!("deploy/iam/policy-{model}.json"));
        assert!(!text.contains("arn:"), "deploy/iam/policy-{model}.json names an ARN, which is partition-specific");
    }
}
