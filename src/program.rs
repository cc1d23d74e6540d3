//! Finds the workload's program before any AWS call, so a start that cannot run is refused with 126
//! or 127 before it is registered, metered or given a seat.
//!
//! The search is execvp's (musl's, which the static gate is linked with): a name that contains `/`
//! is the path itself; any other name is looked for in each entry of the workload's `PATH` in order
//! (the gate hands the workload its own environment, so it is the same `PATH`), an empty entry
//! meaning the current directory as POSIX and musl have it; without `PATH`, musl's default
//! `/usr/local/bin:/bin:/usr/bin`. An entry where the name exists but cannot be executed (a
//! directory, not a regular file, no execute permission for mpgate's effective uid and gids) is
//! passed over as execvp passes over `EACCES`, and is what the refusal names when no later entry
//! has the program. The caller execs the path found here, with `argv[0]` as given.
//! When the workload runs as another user (`supervise --user`), the file must also be executable by
//! that uid and gid (supplementary groups are cleared) and every directory on its way searchable,
//! by their mode bits; ACLs and `noexec` mounts are still the kernel's answer for mpgate's own ids.
//! What this cannot see: a script whose interpreter is missing, or a file the kernel cannot load
//! (`ENOEXEC`, another architecture); those still fail at `execve`, after the proof. The buyer
//! controls the filesystem, so a program swapped between this check and the exec is theirs to run.
//! Must not: read the process environment (the caller hands over the workload's) or call AWS.
#![forbid(unsafe_code)]

use crate::error::{Class, Error};
use nix::fcntl::AtFlags;
use nix::unistd::AccessFlags;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

/// musl's `PATH` when the environment has none (`src/process/execvp.c`).
pub const DEFAULT_PATH: &str = "/usr/local/bin:/bin:/usr/bin";

/// The program `command[0]` names, searched in the `PATH` of `workload_env`: a path mpgate can
/// execve (and, with `runs_as` = `(uid, gid)`, that user too), or the refusal (127 not found, 126
/// found but not executable).
pub fn find(
    command: &[OsString],
    workload_env: &[(OsString, OsString)],
    runs_as: Option<(u32, u32)>,
) -> Result<PathBuf, Error> {
    let Some(name) = command.first() else {
        return Err(Error::Usage("no command given after --".into()));
    };
    let program = name.to_string_lossy().into_owned();
    if name.is_empty() {
        return Err(Error::NotRunnable { class: Class::ExecNotFound, program, why: "the name is empty".into() });
    }
    if name.as_bytes().contains(&0) {
        return Err(Error::Usage(format!("argument {name:?} contains a NUL byte")));
    }
    if name.as_bytes().contains(&b'/') {
        let path = PathBuf::from(name);
        return match check(&path, runs_as) {
            Ok(()) => Ok(path),
            Err(why) => Err(Error::NotRunnable { class: why.class(), program, why: why.to_string() }),
        };
    }
    let search = workload_env
        .iter()
        .rev()
        .find(|(k, _)| k.as_bytes() == b"PATH")
        .map_or_else(|| OsString::from(DEFAULT_PATH), |(_, v)| v.clone());
    let mut first_refusal: Option<(PathBuf, Problem)> = None;
    for dir in search.as_bytes().split(|b| *b == b':') {
        // An empty entry is the current directory; `./` keeps the result a path, never a name.
        let dir = if dir.is_empty() { Path::new(".") } else { Path::new(OsStr::from_bytes(dir)) };
        let candidate = dir.join(name);
        match check(&candidate, runs_as) {
            Ok(()) => return Ok(candidate),
            Err(Problem::Missing(_)) => {}
            Err(problem) => {
                first_refusal.get_or_insert((candidate, problem));
            }
        }
    }
    Err(match first_refusal {
        Some((path, why)) => Error::NotRunnable {
            class: Class::ExecNotExecutable,
            program,
            why: format!("found as {} but {why}", path.display()),
        },
        None => Error::NotRunnable {
            class: Class::ExecNotFound,
            program,
            why: format!("not found in PATH {}", search.to_string_lossy()),
        },
    })
}

/// Why a path cannot be executed.
#[derive(Debug)]
enum Problem {
    /// It does not exist (or a component is not a directory): the `errno` of `stat`.
    Missing(nix::errno::Errno),
    /// It exists but `execve` would refuse it.
    NotExecutable(String),
}

impl Problem {
    fn class(&self) -> Class {
        match self {
            Problem::Missing(_) => Class::ExecNotFound,
            Problem::NotExecutable(_) => Class::ExecNotExecutable,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Missing(errno) => f.write_str(&errno.desc().to_lowercase()),
            Problem::NotExecutable(why) => f.write_str(why),
        }
    }
}

/// Whether `execve(path)` would find an executable regular file (following symlinks, as it does),
/// for mpgate's effective ids and for `runs_as`.
fn check(path: &Path, runs_as: Option<(u32, u32)>) -> Result<(), Problem> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            let errno = nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(nix::errno::Errno::ENOENT as i32));
            return Err(match errno {
                nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => Problem::Missing(errno),
                other => Problem::NotExecutable(other.desc().to_lowercase()),
            });
        }
    };
    let kind = meta.file_type();
    let not_a_file = if kind.is_dir() {
        Some("is a directory")
    } else if kind.is_fifo() {
        Some("is a named pipe, not a regular file")
    } else if kind.is_socket() {
        Some("is a socket, not a regular file")
    } else if kind.is_block_device() || kind.is_char_device() {
        Some("is a device, not a regular file")
    } else if !kind.is_file() {
        Some("is not a regular file")
    } else {
        None
    };
    if let Some(why) = not_a_file {
        return Err(Problem::NotExecutable(why.into()));
    }
    // The kernel's own answer for the effective uid and gids that execve will use; mode bits alone
    // would miss ACLs, `noexec` mounts and root's rule (any execute bit).
    nix::unistd::faccessat(nix::fcntl::AT_FDCWD, path, AccessFlags::X_OK, AtFlags::AT_EACCESS).map_err(|errno| {
        Problem::NotExecutable(format!(
            "is not executable by uid {} ({}; mode {:04o}, owner {}:{})",
            nix::unistd::geteuid(),
            errno.desc().to_lowercase(),
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid()
        ))
    })?;
    match runs_as {
        Some(user) => check_as(path, &meta, user),
        None => Ok(()),
    }
}

/// Whether `uid`:`gid` (no supplementary groups) may execute the file `meta` describes and search
/// every directory above it (of the path with its symlinks resolved), by the mode bits.
fn check_as(path: &Path, meta: &std::fs::Metadata, (uid, gid): (u32, u32)) -> Result<(), Problem> {
    let may = |m: &std::fs::Metadata| {
        let bits = if m.uid() == uid {
            m.mode() >> 6
        } else if m.gid() == gid {
            m.mode() >> 3
        } else {
            m.mode()
        };
        bits & 0o1 != 0
    };
    if !may(meta) {
        return Err(Problem::NotExecutable(format!(
            "is not executable by the workload's uid {uid} gid {gid} (mode {:04o}, owner {}:{})",
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid()
        )));
    }
    let real = std::fs::canonicalize(path).map_err(|e| Problem::NotExecutable(e.to_string().to_lowercase()))?;
    for dir in real.ancestors().skip(1) {
        let Ok(m) = std::fs::metadata(dir) else { continue };
        if !may(&m) {
            return Err(Problem::NotExecutable(format!(
                "cannot be reached by the workload's uid {uid} gid {gid}: {} is not searchable by it (mode {:04o}, owner {}:{})",
                dir.display(),
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn env_path(path: &str) -> Vec<(OsString, OsString)> {
        vec![(OsString::from("PATH"), OsString::from(path))]
    }

    fn cmd(name: &str) -> Vec<OsString> {
        vec![OsString::from(name), OsString::from("arg")]
    }

    fn write(path: &Path, mode: u32) {
        std::fs::write(path, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_name_is_searched_in_path_order_past_entries_that_cannot_run_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        for d in [&a, &b, &c] {
            std::fs::create_dir(d).expect("mkdir");
        }
        std::fs::create_dir(b.join("prog")).expect("a directory named like the program");
        write(&c.join("prog"), 0o755);
        let path = format!("{}:{}:{}", a.display(), b.display(), c.display());
        assert_eq!(find(&cmd("prog"), &env_path(&path), None).expect("found"), c.join("prog"));
    }

    #[test]
    fn nothing_found_is_127_naming_the_path_searched() {
        let err = find(&cmd("no-such-prog-mpgate"), &env_path("/nonexistent:/also/not"), None).expect_err("refused");
        assert_eq!(err.class(), Class::ExecNotFound);
        let line = err.to_string();
        assert!(line.contains("\"no-such-prog-mpgate\": not found in PATH /nonexistent:/also/not"), "{line}");
    }

    #[test]
    fn found_only_where_it_cannot_run_is_126_naming_that_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("prog")).expect("mkdir");
        let err = find(&cmd("prog"), &env_path(&dir.path().display().to_string()), None).expect_err("refused");
        assert_eq!(err.class(), Class::ExecNotExecutable);
        let line = err.to_string();
        assert!(line.contains(&format!("found as {}/prog but is a directory", dir.path().display())), "{line}");
    }

    #[test]
    fn a_path_is_checked_as_is_and_never_searched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("tool");
        write(&file, 0o755);
        let name = file.display().to_string();
        assert_eq!(find(&cmd(&name), &env_path("/nonexistent"), None).expect("found"), file);
        let missing = dir.path().join("missing").display().to_string();
        assert_eq!(
            find(&cmd(&missing), &env_path(&dir.path().display().to_string()), None).expect_err("refused").class(),
            Class::ExecNotFound
        );
        // A component that is a file, not a directory: not found, as execve's ENOTDIR.
        let under_file = format!("{name}/x");
        assert_eq!(find(&cmd(&under_file), &[], None).expect_err("refused").class(), Class::ExecNotFound);
    }

    #[test]
    fn a_fifo_is_not_a_program() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o777)).expect("mkfifo");
        let err = find(&cmd(&fifo.display().to_string()), &[], None).expect_err("refused");
        assert_eq!(err.class(), Class::ExecNotExecutable);
        assert!(err.to_string().contains("is a named pipe"), "{err}");
    }

    #[test]
    fn an_empty_path_entry_is_the_current_directory_and_stays_a_path() {
        // Relative to the test's working directory, which holds Cargo.toml but no program named so.
        let err = find(&cmd("Cargo.toml"), &env_path(":/nonexistent"), None).expect_err("not executable");
        assert_eq!(err.class(), Class::ExecNotExecutable);
        assert!(err.to_string().contains("found as ./Cargo.toml"), "{err}");
    }

    #[test]
    fn an_empty_name_is_not_found_and_no_path_means_musls_default() {
        assert_eq!(find(&cmd(""), &env_path("/bin"), None).expect_err("refused").class(), Class::ExecNotFound);
        let err = find(&cmd("no-such-prog-mpgate"), &[], None).expect_err("refused");
        assert!(err.to_string().contains(&format!("not found in PATH {DEFAULT_PATH}")), "{err}");
    }

    #[test]
    fn under_another_user_the_file_must_be_theirs_to_execute_and_every_directory_theirs_to_search() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        let other = (uid.wrapping_add(4242), gid.wrapping_add(4242));
        let prog = dir.path().join("prog");
        write(&prog, 0o700);
        let name = prog.display().to_string();
        assert!(find(&cmd(&name), &[], None).is_ok(), "mpgate itself may run it");
        assert!(find(&cmd(&name), &[], Some((uid, gid))).is_ok(), "its owner may run it");
        let err = find(&cmd(&name), &[], Some(other)).expect_err("not theirs");
        assert_eq!(err.class(), Class::ExecNotExecutable);
        assert!(err.to_string().contains(&format!("uid {}", other.0)), "{err}");
        std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(find(&cmd(&name), &[], Some(other)).is_ok(), "others may run 0755");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let err = find(&cmd(&name), &[], Some(other)).expect_err("directory not searchable");
        assert!(err.to_string().contains("is not searchable"), "{err}");
    }
}
