//! Reading awsJson request members the way AWS's front door does: a member of the wrong JSON
//! type is a `SerializationException`; a missing required member or a broken constraint is
//! collected into one `ValidationException` ("N validation errors detected: …"). The error body
//! casing depends on the service (metering `message`, License Manager `Message`).

use super::proto::{json_error, lm_error, Outcome};
use serde_json::{Map, Value};

/// Which service's error shape to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Metering,
    LicenseManager,
}

impl Service {
    pub fn error(self, status: u16, code: &str, message: &str) -> Outcome {
        match self {
            Service::Metering => json_error(status, code, message),
            Service::LicenseManager => lm_error(status, code, message),
        }
    }
}

pub type Res<T> = Result<T, Box<Outcome>>;

/// The request object plus the constraint violations found so far.
pub struct Members<'a> {
    pub svc: Service,
    obj: &'a Map<String, Value>,
    errors: Vec<String>,
}

/// `userName` style: AWS names members in validation messages with a lower-case first letter.
fn camel(name: &str) -> String {
    let mut c = name.chars();
    c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default()
}

pub fn parse_body(svc: Service, body: &[u8]) -> Res<Map<String, Value>> {
    let ser = |m: &str| Box::new(svc.error(400, "SerializationException", m));
    // An empty body is an empty structure (botocore sends `{}` for no members).
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|_| ser("Start of structure or map found where not expected."))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ser("Expected a JSON object.")),
    }
}

impl<'a> Members<'a> {
    pub fn new(svc: Service, obj: &'a Map<String, Value>) -> Members<'a> {
        Members { svc, obj, errors: Vec::new() }
    }

    fn ser(&self, m: String) -> Box<Outcome> {
        Box::new(self.svc.error(400, "SerializationException", &m))
    }

    pub fn violation(&mut self, member: &str, value: &str, constraint: &str) {
        let shown = if value.is_empty() { "null".to_string() } else { format!("'{value}'") };
        self.errors.push(format!("Value {shown} at '{}' failed to satisfy constraint: {constraint}", camel(member)));
    }

    pub fn require<T>(&mut self, member: &str, v: Option<T>) -> Option<T> {
        if v.is_none() {
            self.errors.push(format!(
                "Value null at '{}' failed to satisfy constraint: Member must not be null",
                camel(member)
            ));
        }
        v
    }

    pub fn string(&mut self, member: &str) -> Res<Option<String>> {
        match self.obj.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.ser(format!("{member} must be a string."))),
        }
    }

    /// A string with length bounds (in characters) checked.
    pub fn string_len(&mut self, member: &str, min: usize, max: usize) -> Res<Option<String>> {
        let s = self.string(member)?;
        if let Some(v) = &s {
            let n = v.chars().count();
            if n < min {
                self.violation(member, v, &format!("Member must have length greater than or equal to {min}"));
            } else if n > max {
                self.violation(member, v, &format!("Member must have length less than or equal to {max}"));
            }
        }
        Ok(s)
    }

    pub fn int(&mut self, member: &str) -> Res<Option<i64>> {
        match self.obj.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or_else(|| self.ser(format!("{member} must be an integer.")))
            }
            Some(_) => Err(self.ser(format!("{member} must be an integer."))),
        }
    }

    pub fn bool(&mut self, member: &str) -> Res<Option<bool>> {
        match self.obj.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.ser(format!("{member} must be a boolean."))),
        }
    }

    /// awsJson timestamps: epoch seconds as a JSON number (fraction allowed) → Unix millis.
    pub fn timestamp(&mut self, member: &str) -> Res<Option<i64>> {
        match self.obj.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                let secs = n.as_f64().ok_or_else(|| self.ser(format!("{member} must be a timestamp.")))?;
                Ok(Some((secs * 1000.0).floor() as i64))
            }
            Some(_) => Err(self.ser(format!("{member} must be a timestamp (epoch seconds)."))),
        }
    }

    pub fn list(&mut self, member: &str) -> Res<Option<&'a Vec<Value>>> {
        match self.obj.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(self.ser(format!("{member} must be a list."))),
        }
    }

    /// Fails with one `ValidationException` listing every violation collected.
    pub fn finish(self) -> Res<()> {
        if self.errors.is_empty() {
            return Ok(());
        }
        let n = self.errors.len();
        let what = if n == 1 { "validation error" } else { "validation errors" };
        let m = format!("{n} {what} detected: {}", self.errors.join("; "));
        Err(Box::new(self.svc.error(400, "ValidationException", &m)))
    }
}

/// Reads a list element as an object (SerializationException otherwise).
pub fn object<'v>(svc: Service, v: &'v Value, what: &str) -> Res<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| Box::new(svc.error(400, "SerializationException", &format!("{what} must be a structure."))))
}
