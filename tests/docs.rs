//! Documentation that must not drift from the code.

use mpgate::error::EXIT_TABLE;

#[test]
fn exit_code_table_matches_docs() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/exit-codes.md"))
        .expect("docs/exit-codes.md");
    let rows: Vec<(u8, String)> = doc
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let code = cells.get(1)?.parse().ok()?;
            Some((code, cells.get(2)?.trim_matches('`').to_string()))
        })
        .collect();
    let table: Vec<(u8, String)> = EXIT_TABLE.iter().map(|(_, code, name, _)| (*code, name.to_string())).collect();
    assert_eq!(rows, table, "docs/exit-codes.md rows (status, name) must equal error::EXIT_TABLE");
    let mut codes: Vec<u8> = table.iter().map(|r| r.0).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), EXIT_TABLE.len(), "exit statuses are distinct");
}

#[test]
fn readme_test_command_is_what_ci_runs() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let ci = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/run")).expect(".ci/run");
    assert!(readme.contains("scripts/test"), "README names the test command");
    assert!(ci.contains("scripts/test"), ".ci/run runs the README's test command");
}

/// Every variable the code reads (`env.get("…")` in src/, `MPGATE_*` in build.rs) is documented in
/// docs/configuration.md, so the page cannot fall behind the code.
#[test]
fn configuration_doc_names_every_variable_the_code_reads() {
    let root = env!("CARGO_MANIFEST_DIR");
    let doc = std::fs::read_to_string(format!("{root}/docs/configuration.md")).expect("docs/configuration.md");
    let mut sources = vec![std::fs::read_to_string(format!("{root}/build.rs")).expect("build.rs")];
    let mut dirs = vec![std::path::PathBuf::from(format!("{root}/src"))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push(std::fs::read_to_string(&path).expect("source"));
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for text in &sources {
        for (i, _) in text.match_indices("env.get(\"") {
            let rest = &text[i + "env.get(\"".len()..];
            names.insert(rest[..rest.find('"').unwrap_or(0)].to_string());
        }
    }
    // build.rs lists its inputs in `const VARS` (each also a rerun-if-env-changed).
    let build = &sources[0];
    let start = build.find("const VARS: &[&str] = &[").expect("build.rs VARS");
    let list = &build[start..start + build[start..].find("];").expect("end of VARS")];
    for (i, _) in list.match_indices("\"MPGATE_") {
        let rest = &list[i + 1..];
        names.insert(rest[..rest.find('"').unwrap_or(0)].to_string());
    }
    assert!(names.contains("MPGATE_DEADLINE") && names.contains("MPGATE_PUBLIC_KEYS"), "the scan found {names:?}");
    let missing: Vec<&String> = names.iter().filter(|n| !doc.contains(&format!("`{n}`"))).collect();
    assert!(missing.is_empty(), "docs/configuration.md does not document {missing:?}");
}
