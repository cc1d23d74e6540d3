//! The supervisor's re-check of a running contract (docs/contract.md, "While the workload runs"):
//! every `--recheck` (15 minutes, once a day with a license token, as AWS advises; ±10 % jitter so a
//! fleet started together does not call in step) it reads the license with `GetLicense` and judges
//! it as a start does (`entitlement::validity`): AVAILABLE, inside `Validity` by the local clock, and
//! still carrying an entitlement that admits a start. The re-check takes no seat: a second
//! PROVISIONAL checkout would draw a second unit of every counted entitlement while the first is held
//! (a one-seat contract would refuse its own re-check), and what a repeated `ClientToken` returns is
//! undocumented (docs/aws-behaviour.md §4.9).
//! Must not: stop the workload itself (`supervise` does, on what `Lost` says), or treat a failure to
//! ask as a lost license: throttling, 5xx, network, a refused call or an unreadable answer only log
//! and wait for the next tick.
#![forbid(unsafe_code)]

use super::handover::Live;
use crate::entitlement::contract::{self, Allowed};
use crate::entitlement::validity::{self, Invalid, Standing};
use crate::entitlement::{classify, Context, Verdict};
use crate::identity::BakedEntitlement;
use crate::supervise::stop::Policy;
use aws_types::request_id::RequestId as _;
use std::time::Duration;

/// AWS's advice for software that runs in AWS: call again every 15 minutes.
pub const EVERY: Duration = Duration::from_secs(15 * 60);
/// AWS's advice for badly connected on-premises sites (Containers Anywhere): about once a day.
pub const EVERY_ON_PREMISES: Duration = Duration::from_secs(24 * 3600);

/// `15m`, `24h`, `90s`: the largest whole unit.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The re-check's settings and what it last told the workload.
pub struct Watch {
    /// Time between two re-checks, before jitter.
    pub every: Duration,
    /// The policy for a lost license.
    pub on_lost: Policy,
    pub(super) baked: &'static [BakedEntitlement],
    /// The entitlements the checkout allowed (counted ones are what the held seat carries).
    pub(super) checked_out: Vec<Allowed>,
    /// The hand-over file to keep current, when one was written.
    pub(super) live: Option<Live>,
    /// Why the license was found lost, while it is (warn policy).
    pub(super) lost: Option<String>,
}

impl Watch {
    /// A watch over a checkout that allowed `checked_out` of `baked`.
    pub fn new(
        every: Duration,
        on_lost: Policy,
        baked: &'static [BakedEntitlement],
        checked_out: Vec<Allowed>,
        live: Option<Live>,
    ) -> Watch {
        Watch { every, on_lost, baked, checked_out, live, lost: None }
    }

    /// The wait before the next re-check: `every` ±10 %.
    pub fn next_wait(&self) -> Duration {
        self.every.mul_f64(0.9 + 0.2 * crate::entitlement::pacing::unit_random())
    }
}

/// What one `GetLicense` answer means for a running workload.
#[derive(Debug, PartialEq, Eq)]
pub enum Finding {
    /// The license still admits: the entitlements to hand over now, in baked order.
    Holds(Vec<Allowed>),
    /// Expired, cancelled (not AVAILABLE) or without an entitlement that admits a start: why.
    Lost(String),
    /// Nothing can be concluded (a date the model does not allow): why.
    Unclear(String),
}

/// Judge `standing` at `now` (Unix seconds) against the baked admission rule.
pub fn judge(now: i64, standing: &Standing, baked: &[BakedEntitlement], checked_out: &[Allowed]) -> Finding {
    match validity::judge(now, standing) {
        Err(Invalid::Lapsed(why)) => return Finding::Lost(why),
        Err(Invalid::Unreadable(why)) => return Finding::Unclear(why),
        Ok(()) => {}
    }
    // Counted entitlements: what the held seat carries, while the license still has them. Features
    // and tiers (unit None): whatever the license carries now, so an upgrade shows at once.
    let now_allowed: Vec<Allowed> = baked
        .iter()
        .filter(|b| standing.has(b.name, b.unit))
        .filter_map(|b| {
            if b.unit == "None" {
                let value = standing.entitlements.iter().find(|(n, u, _)| n == b.name && u == b.unit);
                Some(Allowed { name: b.name.into(), unit: b.unit.into(), value: value.and_then(|e| e.2.clone()) })
            } else {
                checked_out.iter().find(|a| a.name == b.name && a.unit == b.unit).cloned()
            }
        })
        .collect();
    let admitting: Vec<&str> = baked.iter().filter(|b| b.admits).map(|b| b.name).collect();
    let admitted = if admitting.is_empty() {
        !now_allowed.is_empty()
    } else {
        now_allowed.iter().any(|a| admitting.contains(&a.name.as_str()))
    };
    if admitted {
        Finding::Holds(now_allowed)
    } else if admitting.is_empty() {
        Finding::Lost("no longer carries any of this image's entitlements".into())
    } else {
        Finding::Lost(format!("no longer carries an entitlement that admits a start (one of {})", admitting.join(", ")))
    }
}

impl super::Lease<'_> {
    /// One re-check: `Some(refusal line)` when the license is lost and the policy is to stop.
    pub(super) async fn recheck(&mut self) -> Option<String> {
        let client = match self.client().await {
            Ok(c) => c,
            Err(why) => {
                crate::log::warn(&format!("could not re-check the license {} ({why}); the workload keeps running and mpgate tries again at the next re-check", self.license_arn));
                return None;
            }
        };
        let result = client.get_license().license_arn(&self.license_arn).send().await;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (standing, request_id) = match result {
            Ok(out) => (Standing::of(&out), out.request_id().map(str::to_string)),
            Err(e) => {
                let ctx = Context { region: &self.region, source: self.source, hostname: "" };
                match classify::license_manager::<(), _>(e, "GetLicense", self.product, &ctx) {
                    Verdict::Retry { why, .. } => crate::log::verbose(&format!(
                        "license re-check failed ({why}); the workload keeps running and mpgate tries again at the next re-check"
                    )),
                    Verdict::Refuse(error) => crate::log::warn(&format!(
                        "could not re-check the license ({error}); the workload keeps running and mpgate tries again at the next re-check"
                    )),
                    Verdict::Admit(()) => {}
                }
                return None;
            }
        };
        let (arn, product) = (self.license_arn.clone(), self.product);
        let watch = self.watch.as_mut()?;
        match judge(i64::try_from(now).unwrap_or(i64::MAX), &standing, watch.baked, &watch.checked_out) {
            Finding::Holds(allowed) => {
                if let Some(was) = watch.lost.take() {
                    crate::log::info(&format!("the license {arn} admits again (it {was} at the last re-check)"));
                }
                crate::log::verbose(&format!("license {arn} re-checked: still valid"));
                if let Some(live) = watch.live.as_mut() {
                    live.update(&standing, Some(&allowed), None, now);
                }
                None
            }
            Finding::Unclear(why) => {
                crate::log::warn(&format!(
                    "could not judge the license {arn} at its re-check: it {why}; the workload keeps running"
                ));
                None
            }
            Finding::Lost(why) => {
                if let Some(live) = watch.live.as_mut() {
                    live.update(&standing, None, Some(&why), now);
                }
                let line =
                    contract::refusal(Invalid::Lapsed(why.clone()), &arn, product, request_id.as_deref()).to_string();
                match watch.on_lost {
                    Policy::Stop => Some(line),
                    Policy::Warn => {
                        if watch.lost.as_deref() != Some(why.as_str()) {
                            crate::log::warn(&format!("{line}; the workload keeps running (--on-license-lost warn)"));
                        }
                        watch.lost = Some(why);
                        None
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{judge, Finding};
    use crate::entitlement::contract::Allowed;
    use crate::entitlement::validity::Standing;
    use crate::identity::BakedEntitlement;

    const BAKED: &[BakedEntitlement] = &[
        BakedEntitlement { name: "BasicTier", unit: "None", value: None, admits: true },
        BakedEntitlement { name: "PremiumTier", unit: "None", value: None, admits: true },
        BakedEntitlement { name: "Seats", unit: "Count", value: Some(1), admits: false },
    ];

    fn allowed(name: &str, unit: &str, value: Option<&str>) -> Allowed {
        Allowed { name: name.into(), unit: unit.into(), value: value.map(str::to_string) }
    }

    fn license(status: &str, end: &str, ents: &[(&str, &str)]) -> Standing {
        Standing {
            status: Some(status.into()),
            valid_from: "2026-01-01T00:00:00Z".into(),
            valid_until: Some(end.into()),
            entitlements: ents.iter().map(|(n, u)| (n.to_string(), u.to_string(), None)).collect(),
        }
    }

    #[test]
    fn a_license_that_still_admits_hands_over_what_it_carries_now() {
        let held = [allowed("BasicTier", "None", None), allowed("Seats", "Count", Some("1"))];
        let now = 1_800_000_000; // 2027-01-15
        let upgraded =
            license("AVAILABLE", "2099-01-01T00:00:00+00:00", &[("PremiumTier", "None"), ("Seats", "Count")]);
        assert_eq!(
            judge(now, &upgraded, BAKED, &held),
            Finding::Holds(vec![allowed("PremiumTier", "None", None), allowed("Seats", "Count", Some("1"))])
        );
    }

    #[test]
    fn expiry_cancellation_and_a_lost_tier_are_lost_and_a_bad_date_is_unclear() {
        let held = [allowed("BasicTier", "None", None), allowed("Seats", "Count", Some("1"))];
        let now = 1_800_000_000;
        let lost = |f: Finding, word: &str| matches!(&f, Finding::Lost(w) if w.contains(word));
        let all = [("BasicTier", "None"), ("Seats", "Count")];
        assert!(lost(judge(now, &license("AVAILABLE", "2027-01-01T00:00:00Z", &all), BAKED, &held), "expired at"));
        assert!(lost(judge(now, &license("SUSPENDED", "2099-01-01T00:00:00Z", &all), BAKED, &held), "SUSPENDED"));
        let no_tier = license("AVAILABLE", "2099-01-01T00:00:00Z", &[("Seats", "Count")]);
        assert!(lost(judge(now, &no_tier, BAKED, &held), "one of BasicTier, PremiumTier"));
        let bad = license("AVAILABLE", "2099-01-01T00:00:00", &all);
        assert!(matches!(judge(now, &bad, BAKED, &held), Finding::Unclear(w) if w.contains("Validity.End")));
    }
}
