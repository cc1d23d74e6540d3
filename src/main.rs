//! Thin entry point: run, then map the result to an exit status in one place. The only process exit.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    #[allow(clippy::disallowed_methods)] // the workload's environment, passed through untouched
    let base_env: Vec<_> = std::env::vars_os().collect();
    match mpgate::run(args, &mpgate::platform::ProcessEnv, base_env) {
        Ok(status) => ExitCode::from(status),
        Err(failure) => {
            let class = failure.error.class();
            let msg = failure.error.to_string();
            mpgate::log::emit(
                mpgate::log::Level::Error,
                &msg,
                &[("event", "refused".into()), ("class", class.name().into()), ("exit_code", class.exit_code().into())],
            );
            let line = mpgate::log::text(mpgate::log::Level::Error, &mpgate::error::one_line(&msg));
            if let Some(path) = failure.termination_log {
                // Kubernetes shows this file in `kubectl describe pod`; only write it if it exists.
                if let Ok(mut f) = std::fs::OpenOptions::new().write(true).truncate(true).open(path) {
                    let _ = writeln!(f, "{line}");
                }
            }
            ExitCode::from(failure.error.class().exit_code())
        }
    }
}

/// dlmalloc instead of musl's mallocng: mallocng hands pages back to the kernel as soon as they are
/// free, so an admission makes several times more mmap and munmap calls; dlmalloc keeps freed pages
/// for reuse (counts and timings in docs/performance.md). Pure Rust (the port std uses on
/// wasm), so the aarch64 cross build needs no C toolchain. Keeping freed pages costs nothing here: a
/// gate lives milliseconds, and supervise mode's heap stays small and steady.
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
