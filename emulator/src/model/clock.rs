//! Date formatting and parsing the AWS wire formats need (RFC 3339 UTC, SigV4 `X-Amz-Date`),
//! done by hand on Unix seconds because a date library would be the biggest dependency here.
//! Also the emulated service clock: real time plus an offset tests can move.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The service's notion of "now": real time shifted by a signed offset. Business rules (MeterUsage
/// windows, seat expiry) read it; SigV4 skew checks and credential expirations stay on real time,
/// because the clients under test run on the real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct Clock {
    offset_millis: i64,
}

impl Clock {
    pub fn now(&self) -> SystemTime {
        shift(SystemTime::now(), self.offset_millis)
    }
    pub fn advance(&mut self, by: Duration) {
        self.offset_millis = self.offset_millis.saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
    }
    pub fn set(&mut self, to: SystemTime) {
        self.offset_millis = unix_millis_signed(to) - unix_millis_signed(SystemTime::now());
    }
    pub fn offset_millis(&self) -> i64 {
        self.offset_millis
    }
}

fn shift(t: SystemTime, millis: i64) -> SystemTime {
    if millis >= 0 {
        t + Duration::from_millis(millis.unsigned_abs())
    } else {
        t.checked_sub(Duration::from_millis(millis.unsigned_abs())).unwrap_or(UNIX_EPOCH)
    }
}

/// Unix milliseconds, negative before 1970.
pub fn unix_millis_signed(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

pub fn from_unix_secs(s: i64) -> SystemTime {
    shift(UNIX_EPOCH, s.saturating_mul(1000))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±hh:mm)` (License Manager's ISO8601DateTime).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let compact = format!("{}{}{}T{}{}{}Z", &s[0..4], &s[5..7], &s[8..10], &s[11..13], &s[14..16], &s[17..19]);
    let base = parse_amz_date(&compact)?;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" => 0i64,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) && o.as_bytes()[3] == b':' => {
            let h: i64 = o[1..3].parse().ok()?;
            let m: i64 = o[4..6].parse().ok()?;
            let v = (h * 3600 + m * 60) * 1000;
            if o.starts_with('+') {
                v
            } else {
                -v
            }
        }
        _ => return None,
    };
    Some(shift(base, -offset))
}

pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix millis of the first instant of the previous calendar month (UTC), and whether `now_ms`
/// falls before 06:00 UTC on the 1st of its month (BatchMeterUsage's month-end grace).
pub fn previous_month_grace(now_ms: i64) -> (i64, bool) {
    let secs = now_ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let (py, pm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    let start = days_from_civil(py, pm, 1) * 86_400_000;
    (start, d == 1 && secs.rem_euclid(86_400) < 6 * 3600)
}

fn parts(t: SystemTime) -> (i64, u32, u32, i64, i64, i64) {
    let s = unix_secs(t);
    let (y, mo, d) = civil_from_days(s.div_euclid(86_400));
    let sod = s.rem_euclid(86_400);
    (y, mo, d, sod / 3600, (sod % 3600) / 60, sod % 60)
}

/// `2024-01-31T12:00:00Z`, the form STS, ECS and IMDS use for `Expiration`.
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `t` written in a License Manager date style (`None`: `rfc3339`).
pub fn license_date(t: SystemTime, style: Option<crate::model::world::DateStyle>) -> String {
    use crate::model::world::DateStyle;
    let offset = |minutes: i32| {
        let shifted = shift(t, i64::from(minutes) * 60_000);
        let (y, mo, d, h, mi, s) = parts(shifted);
        let sign = if minutes < 0 { '-' } else { '+' };
        let m = minutes.unsigned_abs();
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{sign}{:02}:{:02}", m / 60, m % 60)
    };
    match style {
        None | Some(DateStyle::Zulu) => rfc3339(t),
        Some(DateStyle::UtcOffset) => offset(0),
        Some(DateStyle::Offset(minutes)) => offset(minutes),
        Some(DateStyle::Fraction) => rfc3339(t).replace('Z', ".000Z"),
        Some(DateStyle::Unzoned) => rfc3339(t).trim_end_matches('Z').to_string(),
    }
}

/// A license's `begin`/`end` as sent: exactly as written without a style, else re-written in it
/// (a string the emulator cannot read goes out as written either way).
pub fn license_validity(written: &str, style: Option<crate::model::world::DateStyle>) -> String {
    match (style, parse_rfc3339(written)) {
        (Some(_), Some(t)) => license_date(t, style),
        _ => written.to_string(),
    }
}

/// `20150830T123600Z`, the SigV4 `X-Amz-Date` form.
pub fn amz_date(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = parts(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// Parses `YYYYMMDDTHHMMSSZ`; None on anything else.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + sec);
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_known_dates() {
        let t = parse_amz_date("20150830T123600Z").expect("valid");
        assert_eq!(unix_secs(t), 1_440_938_160);
        assert_eq!(amz_date(t), "20150830T123600Z");
        assert_eq!(rfc3339(t), "2015-08-30T12:36:00Z");
        let leap = parse_amz_date("20240229T235959Z").expect("valid");
        assert_eq!(rfc3339(leap), "2024-02-29T23:59:59Z");
        assert!(parse_amz_date("2015-08-30T12:36:00Z").is_none());
        assert!(parse_amz_date("20151330T123600Z").is_none());
        assert_eq!(parse_rfc3339("2015-08-30T12:36:00Z"), Some(t));
        assert_eq!(parse_rfc3339("2015-08-30T14:36:00.123+02:00"), Some(t));
        assert!(parse_rfc3339("2015-08-30T12:36:00").is_none());
        use crate::model::world::DateStyle;
        let styled = |s| license_date(t, Some(s));
        assert_eq!(styled(DateStyle::UtcOffset), "2015-08-30T12:36:00+00:00");
        assert_eq!(styled(DateStyle::Fraction), "2015-08-30T12:36:00.000Z");
        assert_eq!(styled(DateStyle::Offset(330)), "2015-08-30T18:06:00+05:30");
        assert_eq!(styled(DateStyle::Offset(-600)), "2015-08-30T02:36:00-10:00");
        assert_eq!(styled(DateStyle::Unzoned), "2015-08-30T12:36:00");
        for style in [DateStyle::UtcOffset, DateStyle::Fraction, DateStyle::Offset(330), DateStyle::Offset(-600)] {
            assert_eq!(parse_rfc3339(&styled(style)), Some(t), "{style:?}");
        }
        assert_eq!(license_validity("not a date", Some(DateStyle::UtcOffset)), "not a date");
        assert_eq!(license_validity("2015-08-30T12:36:00Z", None), "2015-08-30T12:36:00Z");
    }

    #[test]
    fn month_end_grace() {
        let at = |s: &str| unix_millis_signed(parse_rfc3339(s).expect("date"));
        assert_eq!(previous_month_grace(at("2026-03-01T05:59:59Z")), (at("2026-02-01T00:00:00Z"), true));
        assert!(!previous_month_grace(at("2026-03-01T06:00:00Z")).1);
        assert_eq!(previous_month_grace(at("2026-01-01T01:00:00Z")).0, at("2025-12-01T00:00:00Z"));
    }

    #[test]
    fn clock_moves_both_ways() {
        let mut c = Clock::default();
        c.advance(Duration::from_secs(7200));
        assert!((c.offset_millis() - 7_200_000).abs() < 5);
        c.set(UNIX_EPOCH + Duration::from_secs(1_000_000));
        assert!((unix_secs(c.now()) - 1_000_000).abs() <= 1);
    }
}
