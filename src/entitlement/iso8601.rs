//! License Manager's dates: the `ISO8601DateTime` string shape of `Validity.Begin`/`End`, `IssuedAt`
//! and `Expiration` (docs/aws-behaviour.md §4.1), read exactly as the model's pattern allows:
//!
//! `^(-?(?:[1-9][0-9]*)?[0-9]{4})-(1[0-2]|0[1-9])-(3[0-1]|0[1-9]|[1-2][0-9])T(2[0-3]|[0-1][0-9]):`
//! `([0-5][0-9]):([0-5][0-9])(\.[0-9]+)?(Z|[+-](?:2[ 0-3]|[0-1][0-9]):[0-5][0-9])+$`, at most 50 characters.
//!
//! So `Z` and `±hh:mm` offsets, any number of fractional digits, years of more than four digits and
//! negative years. The pattern also admits three things that name no single instant: a day the month
//! does not have (`02-30`), an offset hour `2 ` (the pattern's `2[ 0-3]` holds a space) and several
//! zone designators in a row. A day the month lacks and the space are refused; repeated designators
//! are read when they all name the same offset (every reading then gives the same instant) and
//! refused when they disagree. Everything the pattern refuses is refused, including a time without a
//! zone (the Seller Guide's examples show such times; the model does not allow them).
//! Must not: panic on any input (the fuzz replay drives it), or guess an instant.
#![forbid(unsafe_code)]

/// The model's length limit for `ISO8601DateTime`.
pub const MAX_LEN: usize = 50;

/// Unix seconds of `s` (fractions dropped, rounded down; instants beyond `i64` saturate), or why
/// `s` is not a date-time the License Manager model allows.
pub fn parse(s: &str) -> Result<i64, String> {
    if s.len() > MAX_LEN {
        return Err(format!("it is longer than the {MAX_LEN} characters the model allows"));
    }
    let mut r = Reader { b: s.as_bytes(), i: 0 };
    let negative = r.eat(b'-');
    let year_digits = r.digits();
    if year_digits.len() < 4 || (year_digits.len() > 4 && year_digits[0] == b'0') {
        return Err("its year is not four digits (or more, without a leading zero)".into());
    }
    let month = r.expect(b'-').and_then(|()| r.two(1, 12)).ok_or("its month is not 01-12")?;
    let day = r.expect(b'-').and_then(|()| r.two(1, 31)).ok_or("its day is not 01-31")?;
    let hour = r.expect(b'T').and_then(|()| r.two(0, 23)).ok_or("it has no 'T' and hour 00-23 after the date")?;
    let minute = r.expect(b':').and_then(|()| r.two(0, 59)).ok_or("its minute is not :00-:59")?;
    let second = r.expect(b':').and_then(|()| r.two(0, 59)).ok_or("its second is not :00-:59")?;
    if r.eat(b'.') && r.digits().is_empty() {
        return Err("its fraction of a second has no digits".into());
    }
    let offset = zones(&mut r)?;
    // More than 12 digits of year lies beyond any clock: saturate rather than overflow.
    let year: Option<i128> =
        std::str::from_utf8(year_digits).ok().filter(|d| d.len() <= 12).and_then(|d| d.parse().ok());
    let Some(year) = year.map(|y| if negative { -y } else { y }) else {
        return Ok(if negative { i64::MIN } else { i64::MAX });
    };
    if day > days_in_month(year, month) {
        return Err(format!("{year:04}-{month:02} has no day {day:02}"));
    }
    let secs = days_from_civil(year, month, day) * 86_400 + i128::from(hour * 3600 + minute * 60 + second)
        - i128::from(offset);
    Ok(i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX }))
}

/// The zone designators: one or more `Z` / `±hh:mm`, all naming the same offset (seconds east of UTC).
fn zones(r: &mut Reader<'_>) -> Result<i32, String> {
    let mut offset: Option<i32> = None;
    while !r.done() {
        let this = if r.eat(b'Z') {
            0
        } else {
            let sign = match r.next() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err("its zone is not 'Z' or an offset like +00:00".into()),
            };
            if r.peek2() == Some((b'2', b' ')) {
                return Err(
                    "its offset hour is \"2 \" (the model's pattern lets a space through; no reading is safe)".into()
                );
            }
            let h = r.two(0, 23).ok_or("its offset hour is not 00-23")?;
            let m = r.expect(b':').and_then(|()| r.two(0, 59)).ok_or("its offset minute is not :00-:59")?;
            sign * (h * 3600 + m * 60)
        };
        match offset {
            Some(o) if o != this => return Err("it carries zone designators that name different offsets".into()),
            _ => offset = Some(this),
        }
    }
    offset.ok_or_else(|| "it has no zone ('Z' or an offset like +00:00)".to_string())
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
    fn next(&mut self) -> Option<u8> {
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }
    fn peek2(&self) -> Option<(u8, u8)> {
        Some((*self.b.get(self.i)?, *self.b.get(self.i + 1)?))
    }
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }
    fn expect(&mut self, c: u8) -> Option<()> {
        self.eat(c).then_some(())
    }
    fn digits(&mut self) -> &'a [u8] {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        &self.b[start..self.i]
    }
    /// Exactly two digits, within `lo..=hi`.
    fn two(&mut self, lo: i32, hi: i32) -> Option<i32> {
        let (a, b) = self.peek2()?;
        if !a.is_ascii_digit() || !b.is_ascii_digit() {
            return None;
        }
        self.i += 2;
        let v = i32::from(a - b'0') * 10 + i32::from(b - b'0');
        (lo..=hi).contains(&v).then_some(v)
    }
}

fn days_in_month(year: i128, month: i32) -> i32 {
    let leap = year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i128, month: i32, day: i32) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i128::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i128::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse;

    const BASE: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    #[test]
    fn every_form_the_model_allows_names_the_same_instant() {
        for s in [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00+00:00",
            "2026-01-01T00:00:00-00:00",
            "2026-01-01T00:00:00.000Z",
            "2026-01-01T00:00:00.123456789+00:00",
            "2026-01-01T05:30:00+05:30",
            "2025-12-31T14:00:00-10:00",
            "2026-01-01T00:00:00ZZ",
            "2026-01-01T00:00:00Z+00:00",
        ] {
            assert_eq!(parse(s), Ok(BASE), "{s}");
        }
        assert_eq!(parse("1970-01-01T01:00:00Z"), Ok(3600));
        assert_eq!(parse("2024-02-29T00:00:00Z"), Ok(1_709_164_800));
        assert_eq!(parse("0000-03-01T00:00:00Z"), Ok(-62_162_035_200));
        assert!(parse("-0001-01-01T00:00:00Z").is_ok_and(|t| t < -62_162_035_200));
        assert!(parse("10000-01-01T00:00:00Z").is_ok_and(|t| t > BASE));
        assert_eq!(parse("123456789012345678901234567890-01-01T00:00:00Z"), Ok(i64::MAX));
        assert_eq!(parse("-123456789012345678901234567890-01-01T00:00:00Z"), Ok(i64::MIN));
    }

    #[test]
    fn no_edit_of_a_valid_date_panics_or_is_read_without_a_zone() {
        // Every one-byte deletion, and every replacement from an alphabet of the pattern's own
        // characters and a few foreign ones, of dates in each allowed form.
        let alphabet = b"0123456789-+:.TZtz \x00\xff";
        for valid in ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5+05:30", "-10000-12-31T23:59:59-23:59"] {
            let b = valid.as_bytes();
            for i in 0..b.len() {
                let mut cut = b.to_vec();
                cut.remove(i);
                let _ = parse(&String::from_utf8_lossy(&cut));
                for &c in alphabet {
                    let mut edited = b.to_vec();
                    edited[i] = c;
                    if let Ok(t) = parse(&String::from_utf8_lossy(&edited)) {
                        let text = String::from_utf8_lossy(&edited).into_owned();
                        let zoned = text.ends_with('Z')
                            || text.len() > 6 && matches!(text.as_bytes()[text.len() - 6], b'+' | b'-');
                        assert!(zoned, "{text:?} read as {t} without a zone");
                    }
                }
            }
        }
    }

    #[test]
    fn what_the_model_refuses_or_names_no_instant_is_refused_with_the_reason() {
        for (s, why) in [
            ("2026-01-01T00:00:00", "no zone"),
            ("2026-01-01 00:00:00Z", "'T'"),
            ("2026-01-01t00:00:00z", "'T'"),
            ("2026-01-01T00:00:00z", "zone"),
            ("2026-01-01T00:00:00+0000", "offset minute"),
            ("2026-01-01T00:00:00+24:00", "offset hour"),
            ("2026-01-01T00:00:00+2 :00", "space"),
            ("2026-01-01T00:00:00Z+01:00", "different offsets"),
            ("2026-01-01T24:00:00Z", "hour"),
            ("2026-01-01T23:59:60Z", "second"),
            ("2026-13-01T00:00:00Z", "month"),
            ("2026-00-01T00:00:00Z", "month"),
            ("2026-01-32T00:00:00Z", "day"),
            ("2026-02-29T00:00:00Z", "no day 29"),
            ("2026-04-31T00:00:00Z", "no day 31"),
            ("26-01-01T00:00:00Z", "year"),
            ("02026-01-01T00:00:00Z", "year"),
            ("2026-01-01T00:00:00.Z", "fraction"),
            ("2026-01-01", "'T'"),
            ("", "year"),
            ("2026-01-01T00:00:00.00000000000000000000000000000000Z", "50 characters"),
            ("１９７０-01-01T00:00:00Z", "year"),
        ] {
            let got = parse(s);
            assert!(got.as_ref().is_err_and(|e| e.contains(why)), "{s:?}: {got:?} should say {why:?}");
        }
    }
}
