//! Flavour and identity reporting of the test-flavour binary (the release flavour's network
//! behaviour is tested inside the empty root in `rootfs.rs`).

use crate::support::Run;

#[test]
fn test_flavour_warns_on_every_run_and_version_says_so() {
    let out = Run::gate()
        .arg("version")
        .run()
        .expect_status(0)
        .expect_stderr_contains("mpgate: warning: test flavour")
        .check();
    assert!(out.stdout().starts_with("mpgate 0.1.0 (test flavour)"), "{}", out.stdout());
    let json = Run::gate().args(["version", "--json"]).run().expect_status(0).check();
    let v: serde_json::Value = serde_json::from_str(&json.stdout()).expect("json");
    assert_eq!(v["flavour"], "test");
    assert_eq!(v["pricing_model"], "hourly");
    assert_eq!(v["products"][0]["code"], "8f3kq2demopaid0mpgate01");
    assert_eq!(v["products"][0]["tier"], "paid");
    assert_eq!(v["products"][1]["tier"], "free");
    assert_eq!(v["products"][0]["keys"].as_array().map(Vec::len), Some(2));
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    Run::gate()
        .args(["exec"])
        .run()
        .expect_status(2)
        .expect_one_refusal_line()
        .expect_stderr_contains("mpgate: usage:")
        .check();
    Run::gate()
        .args(["exec", "--deadline", "soon", "--", "true"])
        .run()
        .expect_status(2)
        .expect_one_refusal_line()
        .check();
    Run::gate().args(["frobnicate"]).run().expect_status(2).expect_one_refusal_line().check();
    // clap's whole first paragraph: the line names the missing argument.
    Run::gate()
        .args(["exec", "-q"])
        .run()
        .expect_status(2)
        .expect_one_refusal_line()
        .expect_stderr_contains("the following required arguments were not provided: <CMD>...")
        .check();
    // A mistyped option lands in CMD (which takes '-' values for the workload): refused before any
    // AWS call, not proven and then failed as a command that cannot be found (127).
    for sub in ["exec", "supervise"] {
        Run::gate()
            .args([sub, "--quite", "--", "/bin/true"])
            .run()
            .expect_status(2)
            .expect_one_refusal_line()
            .expect_stderr_contains(&format!("--quite is not an option of mpgate {sub}"))
            .check();
    }
    Run::gate()
        .env("MPGATE_DEADLINE", "forever")
        .args(["exec", "--", "true"])
        .run()
        .expect_status(2)
        .expect_one_refusal_line()
        .expect_stderr_contains("MPGATE_DEADLINE")
        .check();
}
