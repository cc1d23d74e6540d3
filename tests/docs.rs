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
