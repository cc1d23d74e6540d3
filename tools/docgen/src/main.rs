//! `mpgate-docgen DIR`: writes shell completions (bash, zsh, fish) and man pages (`mpgate.1` and one
//! per subcommand) generated from `mpgate::cli::Cli`, so they cannot drift from the real flags.
//! A separate program: the gate binary stays free of clap_complete and clap_mangen.

use clap::CommandFactory as _;
use std::path::{Path, PathBuf};

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: mpgate-docgen DIR");
        return std::process::ExitCode::from(2);
    };
    match generate(&dir) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mpgate-docgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Write every file under `dir`; returns their paths.
fn generate(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
        let mut cmd = mpgate::cli::Cli::command();
        written.push(clap_complete::generate_to(shell, &mut cmd, "mpgate", &completions)?);
    }
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    // Subcommands are deferred (src/cli.rs): build the tree so each page has its arguments.
    let mut cmd = mpgate::cli::Cli::command();
    cmd.build();
    let mut pages = vec![("mpgate".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        pages.push((format!("mpgate-{}", sub.get_name()), sub.clone().name(format!("mpgate-{}", sub.get_name()))));
    }
    for (name, page) in pages {
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        let path = man.join(format!("{name}.1"));
        std::fs::write(&path, out)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::generate;

    #[test]
    fn completions_and_man_pages_cover_every_command_and_flag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = generate(dir.path()).expect("generate");
        let read = |rel: &str| std::fs::read_to_string(dir.path().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let bash = read("completions/mpgate.bash");
        for word in ["exec", "supervise", "check", "pass", "meter", "version", "--deadline", "--log-format", "--live"] {
            assert!(bash.contains(word), "bash completion lacks {word}");
        }
        assert!(read("completions/_mpgate").contains("supervise"));
        assert!(read("completions/mpgate.fish").contains("supervise"));
        let man = read("man/mpgate.1");
        assert!(man.contains(".TH mpgate 1") && man.contains("supervise"), "{man}");
        let exec = read("man/mpgate-exec.1");
        assert!(exec.contains("deadline") && exec.contains("Examples"), "{exec}");
        assert!(files.len() >= 9, "{files:?}");
    }
}
