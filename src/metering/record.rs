//! One usage record: the line format of `usage.log`, its validation against the baked dimensions,
//! and the append that `mpgate meter` (or any workload) performs.
//!
//! Format (one line, at most 4096 bytes with its newline, ASCII fields separated by single spaces):
//! `<unix seconds> <dimension> <quantity> [tagkey=tagvalue ...]`. A line is written with one `write()`
//! on a descriptor opened with `O_APPEND`, which local filesystems apply atomically, so concurrent
//! writers never interleave and a crashed writer leaves at most a line without its newline.
#![forbid(unsafe_code)]

use crate::identity::BakedDimension;
use std::io::Write as _;
use std::path::Path;

/// Longest line, newline included.
pub const MAX_LINE: usize = 4096;
/// AWS allows at most 5 tags per allocation.
pub const MAX_TAGS: usize = 5;

/// A validated usage record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Unix seconds when the usage happened.
    pub at: u64,
    /// A baked dimension.
    pub dimension: String,
    /// 0..=2^31-1.
    pub quantity: u64,
    /// Tags, sorted by key.
    pub tags: Vec<(String, String)>,
}

impl Record {
    /// The canonical tag-set text (`k=v k2=v2`, sorted; empty when untagged).
    pub fn tag_set(&self) -> String {
        tag_set(&self.tags)
    }

    /// The line, newline included.
    pub fn line(&self) -> String {
        let mut s = format!("{} {} {}", self.at, self.dimension, self.quantity);
        for (k, v) in &self.tags {
            s.push(' ');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s.push('\n');
        s
    }
}

/// `k=v k2=v2` for sorted tags.
pub fn tag_set(tags: &[(String, String)]) -> String {
    tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// Back from `tag_set` text to pairs.
pub fn parse_tag_set(s: &str) -> Vec<(String, String)> {
    s.split(' ').filter_map(|t| t.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The model's Tag value, `^[a-zA-Z0-9+ -=._:\/@]+$` of 1-256 characters, under both readings of
/// its `+ -=` (docs/aws-behaviour.md §10.15): only the characters listed, which a regex engine's
/// range space..`=` also admits, so AWS accepts the value whichever reading it applies. Space is
/// left out because it separates the fields of a usage line.
pub fn tag_value_ok(v: &str) -> bool {
    (1..=256).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric() || "+-=._:/@".contains(c))
}

/// Validate the parts of a record against the baked dimensions.
pub fn validate(
    dimensions: &[BakedDimension],
    at: u64,
    dimension: &str,
    quantity: &str,
    tags: &[String],
) -> Result<Record, String> {
    let Some(dim) = dimensions.iter().find(|d| d.name == dimension) else {
        let known: Vec<&str> = dimensions.iter().map(|d| d.name).collect();
        return Err(format!("unknown dimension {dimension:?} (this image meters: {})", known.join(", ")));
    };
    let quantity: u64 = match quantity.parse::<u64>() {
        Ok(q) if q <= i32::MAX as u64 => q,
        _ => return Err(format!("quantity {quantity:?} must be an integer from 0 to 2147483647")),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for t in tags {
        let Some((k, v)) = t.split_once('=') else {
            return Err(format!("tag {t:?} is not key=value"));
        };
        if !dim.tag_keys.contains(&k) {
            let allowed = if dim.tag_keys.is_empty() { "none".to_string() } else { dim.tag_keys.join(", ") };
            return Err(format!("tag key {k:?} is not allowed for dimension {dimension} (allowed: {allowed})"));
        }
        if !tag_value_ok(v) {
            return Err(format!(
                "tag value {v:?} must be 1-256 characters of a-zA-Z0-9 and + - = . _ : / @ (no space)"
            ));
        }
        if pairs.iter().any(|(pk, _)| pk == k) {
            return Err(format!("tag key {k:?} given twice"));
        }
        pairs.push((k.to_string(), v.to_string()));
    }
    if pairs.len() > MAX_TAGS {
        return Err(format!("{} tags given; AWS allows at most {MAX_TAGS} per record", pairs.len()));
    }
    pairs.sort();
    let record = Record { at, dimension: dimension.to_string(), quantity, tags: pairs };
    if record.line().len() > MAX_LINE {
        return Err(format!("the record is longer than {MAX_LINE} bytes"));
    }
    Ok(record)
}

/// Parse one line (without its newline).
pub fn parse(dimensions: &[BakedDimension], line: &str) -> Result<Record, String> {
    let mut fields = line.split(' ');
    let at = fields.next().unwrap_or_default();
    let at: u64 = at.parse().map_err(|_| format!("timestamp {at:?} is not Unix seconds"))?;
    let dimension = fields.next().ok_or("no dimension")?;
    let quantity = fields.next().ok_or("no quantity")?;
    let tags: Vec<String> = fields.map(str::to_string).collect();
    validate(dimensions, at, dimension, quantity, &tags)
}

/// Append `record` to `path`, the usage file the supervisor created (`usage_file::open` refuses
/// anything else), with one `write()` on an `O_APPEND` descriptor.
pub fn append(path: &Path, record: &Record) -> Result<(), String> {
    let mut f = super::usage_file::open(path, super::usage_file::Access::Append)?;
    let line = record.line();
    match f.write(line.as_bytes()) {
        Ok(n) if n == line.len() => Ok(()),
        Ok(n) => Err(format!("short write to {} ({n} of {} bytes)", path.display(), line.len())),
        Err(e) => Err(format!("cannot append to {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIMS: &[BakedDimension] = &[
        BakedDimension { name: "requests", tag_keys: &["team", "env"] },
        BakedDimension { name: "gb", tag_keys: &[] },
    ];

    #[test]
    fn lines_round_trip_with_sorted_tags() {
        let r = validate(DIMS, 7, "requests", "12", &["team=a".into(), "env=prod".into()]).expect("valid");
        assert_eq!(r.line(), "7 requests 12 env=prod team=a\n");
        assert_eq!(parse(DIMS, r.line().trim_end()), Ok(r));
    }

    #[test]
    fn bad_records_are_refused_with_the_reason() {
        for (dim, q, tags, want) in [
            ("nope", "1", vec![], "unknown dimension"),
            ("gb", "-1", vec![], "must be an integer"),
            ("gb", "1.5", vec![], "must be an integer"),
            ("gb", "2147483648", vec![], "must be an integer"),
            ("gb", "1", vec!["team=a".to_string()], "not allowed"),
            ("requests", "1", vec!["team=a".into(), "team=b".into()], "twice"),
            ("requests", "1", vec!["team".into()], "not key=value"),
        ] {
            let e = validate(DIMS, 1, dim, q, &tags).expect_err(want);
            assert!(e.contains(want), "{e}");
        }
        assert!(validate(DIMS, 1, "gb", "2147483647", &[]).is_ok());
        // The characters only a regex's range reading of `+ -=` admits are refused.
        for v in ["a,b", "a!b", "a<b", "a;b", "a*b", "a#b", "a'b", "a\"b", "a(b", "a)b", "a%b", "a&b", "a$b"] {
            let e = validate(DIMS, 1, "requests", "1", &[format!("team={v}")]).expect_err(v);
            assert!(e.contains("tag value"), "{e}");
        }
        for v in ["a+-=._:/@Z9", "x", &"v".repeat(256)] {
            assert!(validate(DIMS, 1, "requests", "1", &[format!("team={v}")]).is_ok(), "{v}");
        }
        assert!(validate(DIMS, 1, "requests", "1", &[format!("team={}", "v".repeat(257))]).is_err());
        assert!(parse(DIMS, "x gb 1").is_err());
        assert!(parse(DIMS, "1 gb").is_err());
    }
}
