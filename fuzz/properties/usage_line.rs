//! Arbitrary bytes as a line of `usage.log` (which the workload, i.e. the buyer's side, writes) through
//! `metering::record::parse`. Must never panic; what it accepts must be a line `mpgate meter` could
//! have written: within MAX_LINE, a baked dimension, a legal quantity, and a parse/line round trip.

use mpgate::identity::BakedDimension;
use mpgate::metering::record;

static DIMENSIONS: [BakedDimension; 2] =
    [BakedDimension { name: "requests", tag_keys: &["env", "team"] }, BakedDimension { name: "users", tag_keys: &[] }];

/// The property, for one input.
pub fn check(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let Ok(r) = record::parse(&DIMENSIONS, line) else { return };
    let text = r.line();
    assert!(text.len() <= record::MAX_LINE, "accepted a line of {} bytes", text.len());
    assert!(DIMENSIONS.iter().any(|d| d.name == r.dimension));
    assert!(r.quantity <= i32::MAX as u64);
    assert!(r.tags.len() <= record::MAX_TAGS);
    assert!(!text[..text.len() - 1].contains('\n'), "a record renders as more than one line: {text:?}");
    let again = record::parse(&DIMENSIONS, text.trim_end_matches('\n')).expect("its own line parses");
    assert_eq!(again, r);
    assert_eq!(record::parse_tag_set(&r.tag_set()), r.tags);
}
