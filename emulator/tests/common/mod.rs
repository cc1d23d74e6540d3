//! Shared test helpers: a raw HTTP/1.1 client, ECS task credentials, and awsJson calls signed with
//! the emulator's own SigV4 code (boto3 in conformance/run.py covers an independent signer).
#![allow(dead_code)]

use mpgate_emulator::{sigv4, Emulator};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("json body")
    }
}

/// One HTTP/1.1 request over a fresh connection; None if no answer arrives within `timeout`.
pub fn send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    timeout: Duration,
) -> Option<Reply> {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(timeout)).expect("timeout");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("write");
    let mut raw = Vec::new();
    if s.read_to_end(&mut raw).is_err() || raw.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines.filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Some(Reply { status, headers, body: body.to_string() })
}

pub fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(base, "GET", path, headers, "", Duration::from_secs(5)).expect("answer")
}

pub fn env_of(emu: &Emulator, id: &str, dir: &std::path::Path) -> std::collections::HashMap<String, String> {
    emu.workload_env(id, dir).expect("env").into_iter().collect()
}

pub struct Creds {
    pub akid: String,
    pub secret: String,
    pub token: Option<String>,
}

pub fn ecs_creds(emu: &Emulator, id: &str) -> Creds {
    let dir = tempfile::tempdir().expect("tmp");
    let env = env_of(emu, id, dir.path());
    let full = &env["AWS_CONTAINER_CREDENTIALS_FULL_URI"];
    let path = full.trim_start_matches(&emu.url());
    let r = get(&emu.url(), path, &[("authorization", &env["AWS_CONTAINER_AUTHORIZATION_TOKEN"])]);
    assert_eq!(r.status, 200, "{}", r.body);
    let j = r.json();
    Creds {
        akid: j["AccessKeyId"].as_str().expect("id").into(),
        secret: j["SecretAccessKey"].as_str().expect("secret").into(),
        token: j["Token"].as_str().map(str::to_string),
    }
}

/// An awsJson 1.1 call (`target` = "AWSMPMeteringService.MeterUsage" etc.) signed for `service` in `region`.
pub fn call(emu: &Emulator, c: &Creds, region: &str, service: &str, target: &str, body: &str) -> Reply {
    signed(emu, c, region, service, "application/x-amz-json-1.1", Some(target), body)
}

/// An AWS Query protocol call (STS: `Action=GetCallerIdentity&Version=2011-06-15`) signed for
/// `service` in `region`.
pub fn call_query(emu: &Emulator, c: &Creds, region: &str, service: &str, body: &str) -> Reply {
    signed(emu, c, region, service, "application/x-www-form-urlencoded", None, body)
}

fn signed(
    emu: &Emulator,
    c: &Creds,
    region: &str,
    service: &str,
    content_type: &str,
    target: Option<&str>,
    body: &str,
) -> Reply {
    let host = emu.url().trim_start_matches("http://").to_string();
    let date = mpgate_emulator::clock::amz_date(SystemTime::now());
    let mut headers: Vec<(String, String)> =
        vec![("content-type".into(), content_type.into()), ("host".into(), host), ("x-amz-date".into(), date.clone())];
    if let Some(target) = target {
        headers.push(("x-amz-target".into(), target.into()));
    }
    if let Some(t) = &c.token {
        headers.push(("x-amz-security-token".into(), t.clone()));
    }
    let signed: Vec<String> = headers.iter().map(|(k, _)| k.clone()).collect();
    let cred = sigv4::Credential {
        access_key_id: c.akid.clone(),
        date: date[..8].to_string(),
        region: region.into(),
        service: service.into(),
        signed_headers: signed.clone(),
        signature: String::new(),
    };
    let req = sigv4::SignedRequest { method: "POST", path: "/", query: "", headers: &headers, body: body.as_bytes() };
    let sig = sigv4::signature(&req, &cred, &date, &c.secret);
    let authz = format!(
        "AWS4-HMAC-SHA256 Credential={}/{}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={sig}",
        c.akid,
        cred.date,
        signed.join(";")
    );
    let mut hs: Vec<(&str, &str)> =
        headers.iter().filter(|(k, _)| k != "host").map(|(k, v)| (k.as_str(), v.as_str())).collect();
    hs.push(("authorization", &authz));
    send(&emu.url(), "POST", "/", &hs, body, Duration::from_secs(5)).expect("answer")
}
