//! The wire shapes of answers: awsJson 1.1 (metering), AWS Query XML (STS), the container
//! credential endpoints' JSON, and IMDS plain text. Also what an injected error fault looks like
//! on each of them. No decisions are made here.

use super::ids::request_id;

/// A complete answer plus what the ledger should remember about it.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub error_code: Option<String>,
    pub workload: Option<String>,
    pub signing_region: Option<String>,
    /// Never answer (IMDS behind hop limit 1).
    pub hang: bool,
}

impl Outcome {
    pub fn new(status: u16, content_type: &str, body: String) -> Outcome {
        Outcome { status, headers: vec![("content-type".into(), content_type.into())], body, ..Outcome::default() }
    }
    pub fn header(mut self, k: &str, v: &str) -> Outcome {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn workload(mut self, w: Option<&str>) -> Outcome {
        self.workload = w.map(str::to_string);
        self
    }
    fn code(mut self, code: &str) -> Outcome {
        self.error_code = Some(code.into());
        self
    }
}

pub const AWS_JSON: &str = "application/x-amz-json-1.1";

pub fn json_ok(body: serde_json::Value) -> Outcome {
    Outcome::new(200, AWS_JSON, body.to_string()).header("x-amzn-RequestId", &request_id())
}

/// awsJson error: metering shapes name the member `message` in lower case (docs/aws-behaviour.md §1.2).
pub fn json_error(status: u16, code: &str, message: &str) -> Outcome {
    let body = serde_json::json!({"__type": code, "message": message});
    Outcome::new(status, AWS_JSON, body.to_string()).header("x-amzn-RequestId", &request_id()).code(code)
}

/// License Manager errors name the member `Message` (capital M; docs/aws-behaviour.md §4.5).
pub fn lm_error(status: u16, code: &str, message: &str) -> Outcome {
    let body = serde_json::json!({"__type": code, "Message": message});
    Outcome::new(status, AWS_JSON, body.to_string()).header("x-amzn-RequestId", &request_id()).code(code)
}

/// License Manager operations (target prefix `AWSLicenseManager.`).
pub const LM_OPS: [&str; 6] = [
    "CheckoutLicense",
    "ExtendLicenseConsumption",
    "CheckInLicense",
    "GetLicense",
    "ListReceivedLicenses",
    "GetAccessToken",
];

fn is_lm(op: &str) -> bool {
    LM_OPS.contains(&op)
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn sts_ok(body: String) -> Outcome {
    Outcome::new(200, "text/xml", body).header("x-amzn-RequestId", &request_id())
}

pub fn sts_error(status: u16, code: &str, message: &str) -> Outcome {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let id = request_id();
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
        xml_escape(code),
        xml_escape(message)
    );
    Outcome::new(status, "text/xml", body).header("x-amzn-RequestId", &id).code(code)
}

/// ECS agent / EKS Pod Identity agent error shape: `{"code","message"}` (aws-config ecs.rs reads both).
pub fn container_error(status: u16, code: &str, message: &str) -> Outcome {
    let body = serde_json::json!({"code": code, "message": message});
    Outcome::new(status, "application/json", body.to_string()).code(code)
}

pub fn plain(status: u16, body: &str) -> Outcome {
    let out = Outcome::new(status, "text/plain", body.to_string());
    if status >= 400 {
        let code = status.to_string();
        return out.code(&code);
    }
    out
}

/// Which protocol an operation speaks, so an injected error looks native.
pub fn fault_error(op: &str, status: u16, code: &str) -> Outcome {
    let message = format!("injected fault: {code}");
    match op {
        "AssumeRoleWithWebIdentity" | "GetCallerIdentity" | "Sts" => sts_error(status, code, &message),
        "EcsCredentials" | "PodIdentityCredentials" | "EcsTaskMetadata" => container_error(status, code, &message),
        o if o.starts_with("Imds") => plain(status, ""),
        o if is_lm(o) => lm_error(status, code, &message),
        _ => json_error(status, code, &message),
    }
}

/// Throttle: metering says `ThrottlingException` (400), License Manager `RateLimitExceededException`
/// (429), STS `Throttling` (400), agents 429.
pub fn throttle(op: &str) -> Outcome {
    match op {
        "AssumeRoleWithWebIdentity" | "GetCallerIdentity" => fault_error(op, 400, "Throttling"),
        "EcsCredentials" | "PodIdentityCredentials" | "EcsTaskMetadata" => fault_error(op, 429, "TooManyRequests"),
        o if o.starts_with("Imds") => plain(429, ""),
        o if is_lm(o) => fault_error(op, 429, "RateLimitExceededException"),
        _ => fault_error(op, 400, "ThrottlingException"),
    }
}

pub fn internal(op: &str) -> Outcome {
    match op {
        "AssumeRoleWithWebIdentity" | "GetCallerIdentity" => fault_error(op, 500, "InternalFailure"),
        "EcsCredentials" | "PodIdentityCredentials" | "EcsTaskMetadata" => fault_error(op, 500, "InternalServerError"),
        o if o.starts_with("Imds") => plain(500, ""),
        o if is_lm(o) => fault_error(op, 500, "ServerInternalException"),
        _ => fault_error(op, 500, "InternalServiceErrorException"),
    }
}
