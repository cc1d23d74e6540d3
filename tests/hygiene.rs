//! Rules the suite keeps for itself, checked over its own source: a test that breaks one is flaky or
//! silently skipped on some machine, which no single run shows.

use std::path::{Path, PathBuf};

/// Every `.rs` file of the integration tests and the emulator's tests, with its text.
fn test_sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("tests"), root.join("emulator/tests")];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                files.push((path, text));
            }
        }
    }
    files.sort();
    assert!(files.len() > 10, "found only {} test sources", files.len());
    files
}

/// `(file:line, line)` of every line matching `hit`, outside this file (which names the patterns).
fn offending(hit: impl Fn(&str) -> bool) -> Vec<String> {
    test_sources()
        .iter()
        .filter(|(path, _)| !path.ends_with("hygiene.rs"))
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, line)| hit(line))
                .map(|(i, line)| format!("{}:{}: {}", path.display(), i + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A `TempDir` dropped at the end of its statement deletes the directory while a child (or the
/// emulator's files) still use its path.
#[test]
fn no_temporary_directory_is_dropped_while_its_path_is_in_use() {
    let temporaries = ["scratch().path()", "tempdir().expect(\"tmp\").path()", "tempdir().expect(\"tempdir\").path()"];
    let found = offending(|line| temporaries.iter().any(|t| line.contains(t)));
    assert!(found.is_empty(), "bind the TempDir to a variable that outlives its use:\n{}", found.join("\n"));
}

/// An ignored test says what it needs, so `cargo test` explains what it left out and scripts/test
/// (which runs them with --include-ignored and fails if any was left out) provides it.
#[test]
fn every_ignored_test_names_what_it_needs() {
    let found = offending(|line| line.trim_start().starts_with("#[ignore") && !line.contains("#[ignore = \"needs "));
    assert!(found.is_empty(), "write #[ignore = \"needs …\"]:\n{}", found.join("\n"));
}

/// A test whose prerequisite is missing fails; it never prints a note and passes.
#[test]
fn no_test_skips_itself_at_run_time() {
    let found = offending(|line| line.contains("skipped") && (line.contains("println!") || line.contains("eprintln!")));
    assert!(
        found.is_empty(),
        "a missing prerequisite is an #[ignore = \"needs …\"] and a failure when run:\n{}",
        found.join("\n")
    );
}
