//! Marketplace Metering `RegisterUsage` (docs/aws-behaviour.md §2.2), checks in AWS's order: signature,
//! input validation, platform, region, product and key version, first-call entitlement; then the
//! signed answer and the billing record.

use super::auth::{authenticate, Caller};
use crate::model::fault::TokenMutation;
use crate::model::ledger::Registration;
use crate::model::variance::IatForm;
use crate::state::{PrincipalKind, Shared};
use crate::wire::jwt::{self, Claims};
use crate::wire::proto::{json_error, json_ok, Outcome};
use crate::wire::request::Incoming;
use serde_json::{json, Map, Value};
use std::time::{Duration, SystemTime};

pub const TARGET_PREFIX: &str = "AWSMPMeteringService.";

pub fn handle(shared: &Shared, op: &str, req: &Incoming, mutation: Option<TokenMutation>) -> Outcome {
    if !["RegisterUsage", "MeterUsage", "BatchMeterUsage", "ResolveCustomer"].contains(&op) {
        let m = format!("operation {op} is not implemented by mpgate-emulator");
        return json_error(400, "UnknownOperationException", &m);
    }
    let caller = match authenticate(shared, req, "aws-marketplace") {
        Ok(c) => c,
        Err(o) => return *o,
    };
    let region = caller.signing_region.clone();
    let workload = caller.cred.principal.workload.clone();
    let mut out = if let Some(message) = shared.denied(&workload, &format!("aws-marketplace:{op}")) {
        json_error(400, "AccessDeniedException", &message)
    } else if shared.throttled(&caller.cred.principal.account, op) {
        crate::wire::proto::throttle(op)
    } else {
        match op {
            "MeterUsage" => super::meter::meter_usage(shared, &caller, req),
            "BatchMeterUsage" => super::saas::batch_meter_usage(shared, &caller, req),
            "ResolveCustomer" => super::saas::resolve_customer(shared, &caller, req),
            _ => register(shared, &caller, req, mutation),
        }
    };
    out.signing_region = Some(region);
    out.workload = Some(workload);
    out
}

struct Input {
    product_code: String,
    version: i32,
    nonce: Option<String>,
}

fn validation(n: usize, what: String) -> Outcome {
    let m = format!("{n} validation error detected: {what}");
    json_error(400, "ValidationException", &m)
}

/// `Err` is the complete ValidationException/SerializationException answer (boxed: it is large).
fn parse_input(body: &[u8]) -> Result<Input, Box<Outcome>> {
    let ser = |m: &str| Box::new(json_error(400, "SerializationException", m));
    let v: Value =
        serde_json::from_slice(body).map_err(|_| ser("Start of structure or map found where not expected."))?;
    let obj: &Map<String, Value> = v.as_object().ok_or_else(|| ser("Expected a JSON object."))?;
    let code = match obj.get("ProductCode") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ser("ProductCode must be a string.")),
    };
    let version = match obj.get("PublicKeyVersion") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_i64().ok_or_else(|| ser("PublicKeyVersion must be an integer."))?),
        Some(_) => return Err(ser("PublicKeyVersion must be an integer.")),
    };
    let nonce = match obj.get("Nonce") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ser("Nonce must be a string.")),
    };
    let mut errors = Vec::new();
    match &code {
        None => errors.push("Value null at 'productCode' failed to satisfy constraint: Member must not be null".to_string()),
        Some(c) if c.chars().count() > 255 => errors.push(format!("Value '{c}' at 'productCode' failed to satisfy constraint: Member must have length less than or equal to 255")),
        Some(c) if !c.chars().all(|ch| ch.is_ascii_alphanumeric() || "-/=:_.@".contains(ch)) => errors.push(format!("Value '{c}' at 'productCode' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[-a-zA-Z0-9/=:_.@]*$")),
        _ => {}
    }
    match version {
        None => errors.push("Value null at 'publicKeyVersion' failed to satisfy constraint: Member must not be null".to_string()),
        Some(v) if v < 1 => errors.push(format!("Value '{v}' at 'publicKeyVersion' failed to satisfy constraint: Member must have value greater than or equal to 1")),
        Some(v) if v > i64::from(i32::MAX) => return Err(ser("PublicKeyVersion is out of range.")),
        _ => {}
    }
    if let Some(n) = &nonce {
        if n.chars().count() > 255 {
            errors.push(
                "Value at 'nonce' failed to satisfy constraint: Member must have length less than or equal to 255"
                    .to_string(),
            );
        }
    }
    if !errors.is_empty() {
        return Err(Box::new(validation(errors.len(), errors.join("; "))));
    }
    Ok(Input {
        product_code: code.unwrap_or_default(),
        version: version.and_then(|v| i32::try_from(v).ok()).unwrap_or(1),
        nonce,
    })
}

fn register(shared: &Shared, caller: &Caller, req: &Incoming, mutation: Option<TokenMutation>) -> Outcome {
    let input = match parse_input(&req.body) {
        Ok(i) => i,
        Err(o) => return *o,
    };
    let p = &caller.cred.principal;
    let unsupported = match p.kind {
        PrincipalKind::EcsTaskRole | PrincipalKind::Irsa => None,
        PrincipalKind::StaticKeys => Some("long-term access keys"),
        PrincipalKind::InstanceRole => Some("an EC2 instance or node role"),
        PrincipalKind::PodIdentity => Some("EKS Pod Identity credentials"),
        PrincipalKind::LicenseToken => Some("License Manager token credentials"),
    };
    if let Some(cause) = unsupported {
        let m = format!("The request was signed with {cause}. RegisterUsage must be called from an ECS task with its task role or an EKS pod with IRSA.");
        return json_error(400, "PlatformNotSupportedException", &m);
    }
    if caller.signing_region != p.region {
        let m = format!("RegisterUsage was called in {} but the workload runs in {}.", caller.signing_region, p.region);
        return json_error(400, "InvalidRegionException", &m);
    }
    let Some(product) = shared.world.product(&input.product_code) else {
        return json_error(400, "InvalidProductCodeException", "Product code is invalid.");
    };
    let expired = product.expired_versions.contains(&input.version);
    if !expired && !product.key_versions.contains(&input.version) {
        return json_error(400, "InvalidPublicKeyVersionException", "Public key version is invalid.");
    }
    let key = (p.workload.clone(), product.code.clone());
    // The seller's own account runs in preview mode: no entitlement check (docs/aws-behaviour.md §2.2).
    let preview = product.seller.as_deref() == Some(p.account.as_str());
    if !preview && !shared.lock().registered.contains(&key) && !shared.subscribed(&p.account, &product.code) {
        return json_error(400, "CustomerNotEntitledException", "Customer is not subscribed to the product.");
    }
    let now = SystemTime::now();
    // The product's own forms, or in variance mode a draw of every form AWS's documents allow.
    let (style, iat_form) = match shared.forms("RegisterUsage.Signature") {
        Some(f) => (f.claims, f.iat),
        None => (product.claim_style, iat_form(product)),
    };
    let millis = matches!(iat_form, IatForm::Millis | IatForm::MillisFraction(_));
    let (iat, day) = if millis {
        (crate::model::clock::unix_millis(now), 86_400_000)
    } else {
        (crate::model::clock::unix_secs(now), 86_400)
    };
    let iat_fraction = match iat_form {
        IatForm::SecondsFraction(f) | IatForm::MillisFraction(f) => Some(f),
        IatForm::Seconds | IatForm::Millis => None,
    };
    let claims = Claims {
        product_code: product.code.clone(),
        key_version: input.version,
        nonce: input.nonce.clone(),
        iat,
        iat_fraction,
        day,
        style,
    };
    let signing_key = shared.keys.products.get(&(product.code.clone(), input.version)).unwrap_or(&shared.keys.emulator);
    let token = jwt::issue(signing_key, &shared.keys.attacker, &claims, mutation);
    {
        let mut inner = shared.lock();
        inner.registered.insert(key);
        inner.registrations.push(Registration {
            workload: p.workload.clone(),
            product_code: product.code.clone(),
            key_version: input.version,
            nonce: input.nonce,
        });
    }
    let mut body = json!({ "Signature": token });
    if expired {
        // The model says only "present when the key version has expired"; a week ahead is our choice.
        let rotation = crate::model::clock::unix_secs(now + Duration::from_secs(7 * 86_400));
        body["PublicKeyRotationTimestamp"] = json!(rotation);
    }
    json_ok(body)
}

/// The unit and form of the `iat` of `product`'s tokens outside variance mode.
fn iat_form(product: &crate::model::world::Product) -> IatForm {
    match (product.iat_millis, product.iat_fraction) {
        (false, false) => IatForm::Seconds,
        (true, false) => IatForm::Millis,
        (false, true) => IatForm::SecondsFraction(375),
        (true, true) => IatForm::MillisFraction(375),
    }
}
