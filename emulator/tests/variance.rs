//! Variance mode on the wire: answers to the same request, read as raw HTTP, take each form the
//! mode draws (sized and chunked bodies, keep-alive and close, header-name casing, error-code forms,
//! unknown members, whitespace) while saying the same thing; without a seed they take one form.

use mpgate_emulator::{Emulator, Listen, World};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One raw answer: header lines as sent, and the body.
struct Raw {
    headers: Vec<String>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// An unsigned RegisterUsage over a new connection: the emulator answers awsJson's
/// `MissingAuthenticationTokenException`.
fn unsigned_call(url: &str) -> Raw {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let body = r#"{"ProductCode":"p","PublicKeyVersion":1}"#;
    write!(
        s,
        "POST / HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: AWSMPMeteringService.RegisterUsage\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut r = BufReader::new(s);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("header line");
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        headers.push(line);
    }
    let raw = Raw { headers, body: String::new() };
    let body = match raw.header("content-length") {
        Some(n) => {
            let mut b = vec![0; n.parse().expect("length")];
            r.read_exact(&mut b).expect("body");
            b
        }
        None => {
            assert_eq!(raw.header("transfer-encoding").as_deref(), Some("chunked"), "{:?}", raw.headers);
            let mut b = Vec::new();
            loop {
                let mut size = String::new();
                r.read_line(&mut size).expect("chunk size");
                let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk).expect("chunk");
                if n == 0 {
                    break;
                }
                b.extend_from_slice(&chunk[..n]);
            }
            b
        }
    };
    Raw { body: String::from_utf8(body).expect("utf-8"), ..raw }
}

/// The error code as Smithy's awsJson reads it: the header first, else `__type`, without a
/// namespace before `#` or anything after `:`.
fn code(raw: &Raw) -> String {
    let v: serde_json::Value = serde_json::from_str(&raw.body).expect("a JSON body");
    let t = raw.header("x-amzn-errortype").or_else(|| v["__type"].as_str().map(str::to_string)).expect("a code");
    let t = t.split(':').next().unwrap_or_default();
    t.rsplit('#').next().unwrap_or_default().to_string()
}

#[test]
fn a_seed_varies_every_form_and_never_the_content() {
    let emu = Emulator::start_with(World::demo(), Listen { variance: Some(3), ..Listen::default() }).expect("emulator");
    let answers: Vec<Raw> = (0..48).map(|_| unsigned_call(&emu.url())).collect();
    for a in &answers {
        assert_eq!(code(a), "MissingAuthenticationTokenException", "{:?} {}", a.headers, a.body);
        let v: serde_json::Value = serde_json::from_str(&a.body).expect("json");
        assert_eq!(v["message"], "Missing Authentication Token");
    }
    let any = |f: &dyn Fn(&Raw) -> bool| answers.iter().any(f);
    assert!(any(&|a| a.header("transfer-encoding").is_some()), "a chunked body");
    assert!(any(&|a| a.header("content-length").is_some()), "a sized body");
    assert!(any(&|a| a.header("connection").as_deref() == Some("close")), "a close");
    assert!(any(&|a| a.header("connection").is_none()), "a keep-alive");
    assert!(any(&|a| a.headers.iter().any(|h| h.starts_with("Content-Type:"))), "Title-Case header names");
    assert!(any(&|a| a.headers.iter().any(|h| h.starts_with("content-type:"))), "lower-case header names");
    assert!(any(&|a| a.body.contains("com.amazonaws.marketplacemetering#")), "a namespaced __type");
    assert!(any(&|a| a.header("x-amzn-errortype").is_some()), "an X-Amzn-ErrorType header");
    assert!(any(&|a| a.body.contains("EmulatorVariance")), "members no model defines");
    assert!(any(&|a| a.body.contains('\n')) && any(&|a| !a.body.contains('\n')), "pretty and compact");
}

#[test]
fn without_a_seed_an_answer_has_one_form() {
    let emu = Emulator::start(World::demo()).expect("emulator");
    let first = unsigned_call(&emu.url());
    for _ in 0..8 {
        let again = unsigned_call(&emu.url());
        assert_eq!(again.body, first.body);
        assert!(again.header("content-length").is_some() && again.header("connection").is_none());
        assert!(again.headers.iter().all(|h| !h.starts_with("Content-Type:")));
    }
}
