//! How the bytes of `usage.log` after the saved offset are cut into lines: a pure function, so every
//! framing case is a unit test. `send` parses each line as a record and quarantines the rest.
//!
//! - A run of NUL bytes where a line would start is skipped and counted: a range `compact` released
//!   reads as zeros, and no record starts with a NUL byte.
//! - A line ends at `\n`. Nothing else is a separator: a `\r` before the `\n` stays in the line (so a
//!   CRLF line is not a record), and an empty line is an empty line.
//! - A line longer than `record::MAX_LINE` (its newline included) is cut whole and refused.
//! - Bytes after the last `\n` are left for the next read while the workload may still complete them;
//!   they are cut as a torn line once it has exited (`last`), or when they already reach
//!   `record::MAX_LINE` (no record is that long).
#![forbid(unsafe_code)]

use super::record::MAX_LINE;

/// One line cut from a chunk.
#[derive(Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// Offset of its first byte in the chunk.
    pub at: usize,
    /// Its bytes, without the newline.
    pub bytes: &'a [u8],
    /// The text to parse as a record, or why its framing already rules a record out.
    pub text: Result<&'a str, String>,
}

/// What `split` cut from a chunk.
#[derive(Debug, PartialEq, Eq)]
pub struct Split<'a> {
    /// The lines, in order.
    pub lines: Vec<Line<'a>>,
    /// NUL bytes skipped.
    pub zeros: usize,
    /// Bytes consumed: all of `buf` but an unterminated rest left for the next read.
    pub consumed: usize,
}

/// Cut `buf` (the file from the saved offset) into lines; `last`: the workload has exited, so an
/// unterminated rest will never be completed.
pub fn split(buf: &[u8], last: bool) -> Split<'_> {
    let mut split = Split { lines: Vec::new(), zeros: 0, consumed: 0 };
    while split.consumed < buf.len() {
        let rest = &buf[split.consumed..];
        let nul = rest.iter().take_while(|&&b| b == 0).count();
        if nul > 0 {
            split.consumed += nul;
            split.zeros += nul;
            continue;
        }
        let (bytes, used, torn) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], i + 1, false),
            None if last || rest.len() >= MAX_LINE => (rest, rest.len(), true),
            None => break,
        };
        split.lines.push(Line { at: split.consumed, bytes, text: framed(bytes, used, torn) });
        split.consumed += used;
    }
    split
}

/// The line as text, unless it is not UTF-8, has no newline, or is longer than any record (checked
/// in that order; `used` counts the newline).
fn framed(bytes: &[u8], used: usize, torn: bool) -> Result<&str, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    if torn {
        return Err("no newline: a torn or oversized write".into());
    }
    if used > MAX_LINE {
        return Err(format!("longer than {MAX_LINE} bytes"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TORN: &str = "no newline: a torn or oversized write";

    fn texts<'a>(split: &Split<'a>) -> Vec<Result<&'a str, String>> {
        split.lines.iter().map(|l| l.text.clone()).collect()
    }

    #[test]
    fn complete_lines_are_cut_at_their_newline_with_their_offsets() {
        let s = split(b"1 a 1\n22 b 2\n", false);
        assert_eq!(texts(&s), [Ok("1 a 1"), Ok("22 b 2")]);
        assert_eq!(s.lines.iter().map(|l| l.at).collect::<Vec<_>>(), [0, 6]);
        assert_eq!((s.consumed, s.zeros), (13, 0));
        assert_eq!(split(b"", true), Split { lines: Vec::new(), zeros: 0, consumed: 0 });
    }

    #[test]
    fn a_partial_last_line_waits_while_the_workload_runs() {
        let s = split(b"1 a 1\n2 a", false);
        assert_eq!(texts(&s), [Ok("1 a 1")]);
        assert_eq!(s.consumed, 6, "the partial line is read again next time");
        assert_eq!(split(b"2 a", false).consumed, 0);
    }

    #[test]
    fn a_final_line_without_newline_is_torn_once_the_workload_has_exited() {
        let s = split(b"1 a 1\n2 a 2", true);
        assert_eq!(texts(&s), [Ok("1 a 1"), Err(TORN.into())]);
        assert_eq!(s.lines[1].bytes, b"2 a 2");
        assert_eq!(s.consumed, 11);
    }

    #[test]
    fn crlf_keeps_its_carriage_return_and_empty_lines_are_lines() {
        let s = split(b"1 a 1\r\n\n\n2 a 2\n", false);
        assert_eq!(texts(&s), [Ok("1 a 1\r"), Ok(""), Ok(""), Ok("2 a 2")]);
        assert_eq!(s.consumed, 15);
        let dims = &[crate::identity::BakedDimension { name: "a", tag_keys: &[] }];
        assert!(crate::metering::record::parse(dims, "1 a 1").is_ok());
        assert!(crate::metering::record::parse(dims, "1 a 1\r").is_err(), "so a CRLF line is quarantined");
    }

    #[test]
    fn a_line_longer_than_any_record_is_cut_whole_and_refused() {
        let mut buf = vec![b'x'; MAX_LINE];
        buf.push(b'\n');
        buf.extend_from_slice(b"1 a 1\n");
        let s = split(&buf, false);
        assert_eq!(texts(&s), [Err(format!("longer than {MAX_LINE} bytes")), Ok("1 a 1")]);
        assert_eq!(s.lines[0].bytes.len(), MAX_LINE);
        assert_eq!(s.consumed, buf.len());
        // MAX_LINE counts the newline: a line of MAX_LINE - 1 bytes fits.
        let mut fits = vec![b'x'; MAX_LINE - 1];
        fits.push(b'\n');
        assert!(split(&fits, false).lines[0].text.is_ok());
    }

    #[test]
    fn an_unterminated_rest_as_long_as_any_record_is_torn_at_once() {
        let s = split(&[b'x'; MAX_LINE], false);
        assert_eq!(texts(&s), [Err(TORN.into())]);
        assert_eq!(s.consumed, MAX_LINE);
        assert_eq!(split(&[b'x'; MAX_LINE - 1], false).consumed, 0, "shorter: could still be a record");
    }

    #[test]
    fn zero_runs_where_a_line_starts_are_skipped_and_counted() {
        let s = split(b"\x00\x00\x001 a 1\n\x00\x002 a 2\n\x00", false);
        assert_eq!(texts(&s), [Ok("1 a 1"), Ok("2 a 2")]);
        assert_eq!(s.lines.iter().map(|l| l.at).collect::<Vec<_>>(), [3, 11]);
        assert_eq!((s.zeros, s.consumed), (6, 18));
        // Inside a line a NUL is just a byte of it.
        assert_eq!(texts(&split(b"1 a\x001\n", false)), [Ok("1 a\u{0}1")]);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_before_the_framing() {
        assert_eq!(texts(&split(b"1 \xff 1\n", false)), [Err("not UTF-8".into())]);
        assert_eq!(texts(&split(b"1 \xff 1", true)), [Err("not UTF-8".into())], "even when torn");
    }
}
