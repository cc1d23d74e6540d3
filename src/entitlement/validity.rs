//! What `GetLicense` says about a license (docs/aws-behaviour.md §4.4), and whether that lets a
//! container run now: status AVAILABLE, the local clock inside `Validity`, and, for the supervisor's
//! re-check, the entitlements a start needs still on the license. Used at start
//! (`contract::checkout`) and while running (`license::recheck`), so both judge alike.
//! Must not: call AWS, read the clock (`now` is given) or decide what happens to a running workload.
#![forbid(unsafe_code)]

use super::iso8601;
use aws_sdk_licensemanager::operation::get_license::GetLicenseOutput;

/// The license as one `GetLicense` answer describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// `Status` (`AVAILABLE`, `EXPIRED`, `SUSPENDED`…), when the answer has one.
    pub status: Option<String>,
    /// `Validity.Begin`, exactly as AWS sent it.
    pub valid_from: String,
    /// `Validity.End`, exactly as AWS sent it; `None` for a license without an end.
    pub valid_until: Option<String>,
    /// The license's entitlements: (name, unit, value for unit `None`).
    pub entitlements: Vec<(String, String, Option<String>)>,
}

impl Standing {
    /// The parts of a `GetLicense` answer the gate reads.
    pub fn of(out: &GetLicenseOutput) -> Standing {
        let Some(license) = out.license() else { return Standing::default() };
        let range = license.validity();
        Standing {
            status: license.status().map(|s| s.as_str().to_string()),
            valid_from: range.map(|r| r.begin().to_string()).unwrap_or_default(),
            valid_until: range.and_then(|r| r.end()).map(str::to_string),
            entitlements: license
                .entitlements()
                .iter()
                .map(|e| (e.name().to_string(), e.unit().as_str().to_string(), e.value().map(str::to_string)))
                .collect(),
        }
    }

    /// Whether the license carries an entitlement of this name and unit.
    pub fn has(&self, name: &str, unit: &str) -> bool {
        self.entitlements.iter().any(|(n, u, _)| n == name && u == unit)
    }
}

/// Why a license does not let a container run now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// The license is not AVAILABLE, not yet valid or expired: the buyer is not entitled (exit 80).
    Lapsed(String),
    /// A date the License Manager model does not allow: nothing can be concluded (exit 82).
    Unreadable(String),
}

/// `Ok` when the license is AVAILABLE and `now` (Unix seconds) lies in [begin, end).
pub fn judge(now: i64, standing: &Standing) -> Result<(), Invalid> {
    match standing.status.as_deref() {
        Some("AVAILABLE") => {}
        Some(s) => return Err(Invalid::Lapsed(format!("is {s}"))),
        None => return Err(Invalid::Lapsed("has no status in GetLicense's answer".into())),
    }
    let begin = &standing.valid_from;
    match iso8601::parse(begin) {
        Ok(b) if now < b => return Err(Invalid::Lapsed(format!("is not valid before {begin}"))),
        Ok(_) => {}
        Err(why) => return Err(unreadable("Validity.Begin", begin, &why)),
    }
    match standing.valid_until.as_deref().map(|e| (e, iso8601::parse(e))) {
        Some((e, Ok(t))) if now >= t => Err(Invalid::Lapsed(format!("expired at {e}"))),
        Some((e, Err(why))) => Err(unreadable("Validity.End", e, &why)),
        _ => Ok(()),
    }
}

/// The refusal wording for a date field the model does not allow, naming the field and its value.
pub fn unreadable(field: &str, value: &str, why: &str) -> Invalid {
    Invalid::Unreadable(format!(
        "has a {field} of {value:?}, which is not a date-time the License Manager model allows ({why})"
    ))
}

#[cfg(test)]
mod tests {
    use super::{judge, Invalid, Standing};
    use crate::entitlement::iso8601::parse;

    fn standing(status: Option<&str>, begin: &str, end: Option<&str>) -> Standing {
        Standing {
            status: status.map(str::to_string),
            valid_from: begin.into(),
            valid_until: end.map(str::to_string),
            entitlements: Vec::new(),
        }
    }

    #[test]
    fn only_an_available_license_inside_its_validity_admits() {
        let (b, e) = ("2026-01-01T00:00:00Z", Some("2027-01-01T00:00:00+00:00"));
        let t = |s: &str| parse(s).expect("time");
        let ok = standing(Some("AVAILABLE"), b, e);
        assert_eq!(judge(t("2026-06-01T00:00:00Z"), &ok), Ok(()));
        assert_eq!(judge(t("2026-06-01T00:00:00Z"), &standing(Some("AVAILABLE"), b, None)), Ok(()));
        assert_eq!(judge(t(b), &ok), Ok(()));
        let lapsed = |r: Result<(), Invalid>, word: &str| matches!(r, Err(Invalid::Lapsed(w)) if w.contains(word));
        assert!(lapsed(judge(t("2025-12-31T23:59:59Z"), &ok), "not valid before"));
        assert!(lapsed(judge(t("2027-01-01T00:00:00Z"), &ok), "expired at 2027-01-01T00:00:00+00:00"));
        assert!(lapsed(judge(t("2026-06-01T00:00:00Z"), &standing(Some("SUSPENDED"), b, e)), "SUSPENDED"));
        assert!(lapsed(judge(t("2026-06-01T00:00:00Z"), &standing(None, b, e)), "no status"));
    }

    #[test]
    fn an_unreadable_date_names_the_field_and_the_value() {
        let now = parse("2026-06-01T00:00:00Z").expect("time");
        let r = judge(now, &standing(Some("AVAILABLE"), "2026-01-01T00:00:00", None));
        assert!(
            matches!(&r, Err(Invalid::Unreadable(w)) if w.contains("Validity.Begin of \"2026-01-01T00:00:00\"")),
            "{r:?}"
        );
        let r = judge(now, &standing(Some("AVAILABLE"), "2026-01-01T00:00:00Z", Some("2099-02-30T00:00:00Z")));
        assert!(
            matches!(&r, Err(Invalid::Unreadable(w)) if w.contains("Validity.End of \"2099-02-30T00:00:00Z\"")),
            "{r:?}"
        );
    }
}
