//! Containers Anywhere: License Manager license token → GetAccessToken → STS → CheckoutLicense.

use super::*;

fn header<'a>(r: &'a mpgate_emulator::Recorded, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The access key id a SigV4-signed request was signed with.
fn signing_key(r: &mpgate_emulator::Recorded) -> String {
    let authz = header(r, "authorization").unwrap_or_default();
    authz.split("Credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or_default().to_string()
}

#[test]
fn containers_anywhere_admits_an_on_prem_start_through_the_unsigned_token_exchange() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let run = supervise_report(gate(&emu, ON_PREM, dir.path()), dir.path());
    run.without_env("AWS_REGION").without_env("AWS_DEFAULT_REGION").run().expect_status(0).check();

    let exchange = recorded(&emu, "GetAccessToken");
    assert_eq!(exchange.len(), 1, "{:?}", emu.requests());
    assert_eq!(exchange[0].status, 200);
    assert_eq!(header(&exchange[0], "authorization"), None, "GetAccessToken must be unsigned");
    let token = std::fs::read_to_string(dir.path().join("license_token")).expect("token file");
    let sent = &emu.bodies("GetAccessToken")[0];
    assert_eq!(sent["Token"].as_str(), Some(token.trim()));

    let assume = recorded(&emu, "AssumeRoleWithWebIdentity");
    assert_eq!(assume.len(), 1);
    assert_eq!(assume[0].status, 200);
    assert_eq!(header(&assume[0], "authorization"), None, "AssumeRoleWithWebIdentity is unsigned");
    let form: std::collections::HashMap<String, String> = url_form(&assume[0].body).into_iter().collect();
    assert_eq!(form.get("RoleArn").map(String::as_str), Some(mpgate_emulator::LICENSE_TOKEN_ROLE));

    // Signed with the role's credentials, in the chart's default region (no AWS_REGION given).
    let checkout = recorded(&emu, "CheckoutLicense");
    assert_eq!(checkout.len(), 1);
    assert_eq!(checkout[0].workload.as_deref(), Some(ON_PREM));
    assert_eq!(checkout[0].signing_region.as_deref(), Some("us-east-1"));
    let report = Report::read(&dir.path().join("report.json"));
    assert_eq!(report.var("MPGATE_REGION").as_deref(), Some("us-east-1"));
    assert_eq!(report.var("MPGATE_ENTITLEMENTS").as_deref(), Some("BasicTier:None,Seats:Count:1"));
    assert!(out_seats(&emu).is_empty(), "supervise returns the seat at exit: {:?}", emu.seats());
}

fn url_form(body: &str) -> Vec<(String, String)> {
    body.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), percent_decode(v))).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn containers_anywhere_prefers_the_helm_variable_and_accepts_the_go_sample_variable() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    // Only the Go sample's variable: admitted.
    gate(&emu, ON_PREM, dir.path())
        .without_env("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE")
        .args(["supervise", "-q", "--", "true"])
        .run()
        .expect_status(0)
        .check();
    // Both set: the Helm variable wins, even when the Go one would work.
    gate(&emu, ON_PREM, dir.path())
        .env("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE", dir.path().join("missing-token"))
        .args(["supervise", "--", "true"])
        .run()
        .expect_status(82)
        .expect_one_refusal_line()
        .expect_stderr_contains("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE")
        .expect_stderr_contains("missing-token")
        .check();
}

#[test]
fn containers_anywhere_refuses_a_missing_unreadable_or_rejected_token_as_misconfigured() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    let refuse = |run: Run, needle: &str| {
        run.args(["supervise", "--", "true"])
            .run()
            .expect_status(82)
            .expect_one_refusal_line()
            .expect_stderr_contains("License Manager license token")
            .expect_stderr_contains(needle)
            .check();
    };
    let both = |run: Run, path: &Path| {
        run.env("AWS_WEB_IDENTITY_REFRESH_TOKEN_FILE", path).env("AWS_LICENSE_ACCESS_FILE", path)
    };
    // Missing, and a directory where the file should be (unreadable even for root).
    refuse(both(gate(&emu, ON_PREM, dir.path()), &dir.path().join("nope")), "cannot read the license token file");
    let as_dir = dir.path().join("license_dir");
    std::fs::create_dir(&as_dir).expect("dir");
    refuse(both(gate(&emu, ON_PREM, dir.path()), &as_dir), "cannot read the license token file");
    // A token License Manager does not know (revoked, or from another account).
    let forged = dir.path().join("forged");
    std::fs::write(&forged, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln").expect("write");
    refuse(both(gate(&emu, ON_PREM, dir.path()), &forged), "AccessDeniedException");
    // No role, or a role the token's trust does not cover.
    refuse(gate(&emu, ON_PREM, dir.path()).without_env("AWS_ROLE_ARN"), "AWS_ROLE_ARN");
    refuse(
        gate(&emu, ON_PREM, dir.path()).env("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/someone-else"),
        "AssumeRoleWithWebIdentity",
    );
    assert!(recorded(&emu, "CheckoutLicense").is_empty(), "no checkout without credentials");
}

#[test]
fn containers_anywhere_retries_a_throttled_token_exchange() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let dir = scratch();
    emu.inject("GetAccessToken", Fault::Throttle);
    emu.inject("AssumeRoleWithWebIdentity", Fault::InternalError);
    gate(&emu, ON_PREM, dir.path()).args(["supervise", "-q", "--", "true"]).run().expect_status(0).check();
    assert_eq!(recorded(&emu, "GetAccessToken").len(), 2);
    assert_eq!(recorded(&emu, "AssumeRoleWithWebIdentity").len(), 2);
}

#[test]
fn containers_anywhere_supervise_refreshes_the_credentials_and_keeps_the_seat() {
    // The hour compressed: credentials live 24 s (AWS: 3600 s) and the seat 60 s (AWS: 60 min), so
    // the extension at half the seat's lifetime (30 s) needs credentials issued after the first ones
    // died; the emulator refuses expired ones with ExpiredTokenException.
    let mut world = world_with_seats(1);
    world.licenses.iter_mut().find(|l| l.arn == CONTRACT_LICENSE).expect("license").provisional_ttl_minutes = 1;
    let emu = Emulator::start(world).expect("emulator");
    emu.set_session_lifetime(Duration::from_secs(24));
    let dir = scratch();
    let mut child = supervisor(&emu, ON_PREM, dir.path(), &["sleep", "120"]);
    let started = Instant::now();
    let extended = || recorded(&emu, "ExtendLicenseConsumption").iter().any(|r| r.status == 200);
    while !extended() {
        assert!(
            started.elapsed() <= Duration::from_secs(50),
            "no successful ExtendLicenseConsumption within 50 s: {:#?}",
            emu.requests()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(out_seats(&emu).len(), 1, "the seat is still held: {:?}", emu.seats());
    let failures: Vec<_> = emu.requests().into_iter().filter(|r| r.status != 200).collect();
    assert!(failures.is_empty(), "no call failed (no expired credentials used): {failures:#?}");
    let exchanges = recorded(&emu, "GetAccessToken");
    let assumed = recorded(&emu, "AssumeRoleWithWebIdentity");
    assert_eq!(exchanges.len(), 2, "one exchange at start, one refresh before the extension");
    assert_eq!(assumed.len(), 2);
    let tokens: Vec<String> = assumed
        .iter()
        .filter_map(|r| url_form(&r.body).into_iter().find(|(k, _)| k == "WebIdentityToken").map(|(_, v)| v))
        .collect();
    assert_ne!(tokens[0], tokens[1], "each refresh uses a fresh access token");
    let checkout = &recorded(&emu, "CheckoutLicense")[0];
    let extend = recorded(&emu, "ExtendLicenseConsumption").into_iter().find(|r| r.status == 200).expect("extend");
    assert_ne!(signing_key(checkout), signing_key(&extend), "the extension is signed with refreshed credentials");

    child.term();
    assert_eq!(wait_exit(&mut child), Some(143));
    assert!(out_seats(&emu).is_empty(), "seat back after SIGTERM: {:?}", emu.seats());
    assert_eq!(emu.seats()[0].state, SeatState::CheckedIn);
}
