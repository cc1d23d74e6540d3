//! What a seller ships and a buyer's operator deploys, tested against what the code does:
//! `Dockerfile.example` (parsed, then the same root filesystem run as its non-root USER against the
//! emulator), the `deploy/` examples (syntax, roles, and only variables mpgate reads) and the static
//! aarch64 build under qemu-user.

mod aarch64;
mod deploy;
mod deploy_run;
mod dockerfile;

use std::path::{Path, PathBuf};

/// A file of the repository.
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn read_repo_file(rel: &str) -> String {
    std::fs::read_to_string(repo_file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The variable names (`MPGATE_*`, `AWS_*`) in backticks in docs/configuration.md from the line that
/// starts with `from` up to the next line that starts with `to`: the documented list of what mpgate reads.
pub fn doc_variables(from: &str, to: &str) -> std::collections::BTreeSet<String> {
    let doc = read_repo_file("docs/configuration.md");
    let start =
        doc.lines().position(|l| l.starts_with(from)).unwrap_or_else(|| panic!("docs/configuration.md lacks {from:?}"));
    let section = doc.lines().skip(start + 1).take_while(|l| !l.starts_with(to));
    section
        .flat_map(|l| l.split('`').skip(1).step_by(2).map(str::to_string).collect::<Vec<_>>())
        .flat_map(|code| code.split(" / ").map(str::to_string).collect::<Vec<_>>())
        .filter(|w| is_variable(w))
        .collect()
}

/// `MPGATE_DEADLINE`, `AWS_REGION`: the shape of a variable mpgate or the AWS SDK could read.
pub fn is_variable(word: &str) -> bool {
    (word.starts_with("MPGATE_") || word.starts_with("AWS_"))
        && word.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
