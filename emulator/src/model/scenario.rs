//! Reading a scenario file (`--world FILE.json`): every field must be one `World` defines, and a
//! refusal names the path of the field it is about (`workloads[1].imds_reachable`), so a misspelt
//! field fails loudly instead of silently taking its default. Must not: accept a world serde refuses.

use super::world::World;

impl World {
    /// Parse a scenario; the error is `PATH: serde's message` (PATH absent for the top level).
    pub fn from_json(text: &str) -> Result<World, String> {
        serde_json::from_str(text).map_err(|e| match path_at(text, e.line(), e.column()) {
            p if p.is_empty() => e.to_string(),
            p => format!("{p}: {e}"),
        })
    }
}

/// One level of the path being walked: an object (and the key whose value is being read) or an array
/// (and the index of the element being read).
enum Frame {
    Object { key: Option<String>, expect_key: bool },
    Array(usize),
}

/// The JSON path (`a.b[2].c`) of the value being read at 1-based `line`, `column` of `text`: the
/// member whose key or value that position is in. Tolerates any text: it only scans the part before
/// the position.
pub fn path_at(text: &str, line: usize, column: usize) -> String {
    let offset =
        text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum::<usize>().saturating_add(column);
    let mut stack: Vec<Frame> = Vec::new();
    let mut chars = text.char_indices().take_while(|(i, _)| *i < offset).map(|(_, c)| c);
    while let Some(c) = chars.next() {
        match c {
            '{' => stack.push(Frame::Object { key: None, expect_key: true }),
            '[' => stack.push(Frame::Array(0)),
            '}' | ']' => {
                stack.pop();
            }
            ',' => match stack.last_mut() {
                Some(Frame::Array(i)) => *i += 1,
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                None => {}
            },
            '"' => {
                let mut s = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                s.push(escaped);
                            }
                        }
                        c => s.push(c),
                    }
                }
                if let Some(Frame::Object { key, expect_key }) = stack.last_mut() {
                    if *expect_key {
                        *key = Some(s);
                        *expect_key = false;
                    }
                }
            }
            _ => {}
        }
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array(i) => path.push_str(&format!("[{i}]")),
        }
    }
    path
}
