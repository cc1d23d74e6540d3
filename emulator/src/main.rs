//! `mpgate-emulator [--listen 127.0.0.1:0] [--world FILE.json] [--env-dir DIR]`: runs the
//! emulator as a process for sellers' CI and non-Rust tests. Prints one line with the URL,
//! optionally writes `<DIR>/<workload>.env` (+ `<DIR>/<workload>/` token files), serves until
//! SIGINT or SIGTERM.

use mpgate_emulator::{Emulator, World};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

struct Args {
    listen: SocketAddr,
    world: Option<PathBuf>,
    env_dir: Option<PathBuf>,
}

const USAGE: &str = "usage: mpgate-emulator [--listen 127.0.0.1:0] [--world FILE.json] [--env-dir DIR]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args { listen: SocketAddr::from(([127, 0, 0, 1], 0)), world: None, env_dir: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--listen" => args.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--world" => args.world = Some(PathBuf::from(value()?)),
            "--env-dir" => args.env_dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn write_env_files(emu: &Emulator, dir: &std::path::Path) -> std::io::Result<()> {
    for id in emu.workload_ids() {
        let files = dir.join(&id);
        std::fs::create_dir_all(&files)?;
        let env = emu.workload_env(&id, &files)?;
        let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(dir.join(format!("{id}.env")), text)?;
    }
    Ok(())
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let world = match &args.world {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => World::demo(),
    };
    let emu = Emulator::start_on(world, args.listen).map_err(|e| format!("cannot start: {e}"))?;
    if let Some(dir) = &args.env_dir {
        write_env_files(&emu, dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut out = std::io::stdout();
    // Launchers wait for this exact line, so flush it before serving.
    let _ = writeln!(out, "mpgate-emulator listening on {}", emu.url());
    let _ = out.flush();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        Ok::<(), String>(())
    })?;
    drop(emu);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpgate-emulator: {e}");
            ExitCode::from(2)
        }
    }
}
