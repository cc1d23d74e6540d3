//! `mpgate-emulator [--listen 127.0.0.1:0] [--tls-listen 127.0.0.1:0] [--world FILE.json] [--env-dir DIR]
//! [--ecs-agent ADDR] [--imds WORKLOAD=ADDR]...`: runs the emulator as a process for sellers' CI and
//! non-Rust tests. `--tls-listen` adds an HTTPS port with the test certificate of testdata/emulator-tls
//! (trust `testdata/emulator-tls/ca.pem`), printed on a second line `... listening on https://...`.
//! `--ecs-agent 169.254.170.2:80` and `--imds ID=169.254.169.254:80` serve the real link-local
//! endpoints (inside a network namespace or container where those addresses exist). Prints one line with the URL,
//! optionally writes `<DIR>/<workload>.env` (+ `<DIR>/<workload>/` token files), serves until
//! SIGINT or SIGTERM. `--variance SEED` answers every request in forms drawn from SEED (docs/emulator.md,
//! "Variance") and says so on stderr.
//!
//! `MPGATE_EMULATOR_LISTEN=ADDR` and `MPGATE_EMULATOR_WORLD=FILE.json` stand for `--listen` and `--world`
//! where no flag is given (a service container, `Dockerfile.emulator`); `MPGATE_EMULATOR_WORLD_JSON`
//! holds the scenario itself, for a container that has no file to read.
//!
//! `mpgate-emulator env WORKLOAD (--url URL | --dir DIR)`: prints `export K='V'` lines for
//! `eval`: asked from a running emulator (`--url`; token files go under `--dir`, default /tmp), or
//! read from the `<DIR>/<WORKLOAD>.env` file a `--env-dir` run wrote.

use mpgate_emulator::{Emulator, Listen, World};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

struct Args {
    listen: Listen,
    world: Option<PathBuf>,
    /// The scenario itself (`MPGATE_EMULATOR_WORLD_JSON`), used when no file is named.
    world_json: Option<String>,
    env_dir: Option<PathBuf>,
}

const USAGE: &str = "usage: mpgate-emulator [--listen 127.0.0.1:0] [--tls-listen 127.0.0.1:0]
                      [--world FILE.json] [--env-dir DIR] [--variance SEED]
                      [--ecs-agent 169.254.170.2:80] [--pod-identity-agent ADDR] [--imds WORKLOAD=169.254.169.254:80]...
       (MPGATE_EMULATOR_LISTEN and MPGATE_EMULATOR_WORLD stand for --listen and --world;
        MPGATE_EMULATOR_WORLD_JSON holds the scenario itself)
       mpgate-emulator env WORKLOAD (--url URL [--dir DIR] | --dir DIR)";

/// POSIX single-quoting: safe inside `eval`.
fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

fn http_get(url: &str, path: &str) -> Result<String, String> {
    use std::io::Read;
    let addr = url.strip_prefix("http://").ok_or("--url must start with http://")?.trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    write!(s, "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("malformed answer")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("emulator said: {}", body.trim()));
    }
    Ok(body.to_string())
}

/// The `env` subcommand.
fn env_command(mut args: impl Iterator<Item = String>) -> Result<(), String> {
    let workload = args.next().ok_or(USAGE)?;
    let (mut url, mut dir) = (None, None);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--url" => url = Some(value),
            "--dir" => dir = Some(PathBuf::from(value)),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let pairs: Vec<(String, String)> = match (url, dir) {
        (Some(url), dir) => {
            let dir = dir.unwrap_or_else(std::env::temp_dir);
            let dir = std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let q: String =
                form_urlencoded::Serializer::new(String::new()).append_pair("dir", &dir.display().to_string()).finish();
            let body = http_get(&url, &format!("/_emulator/env/{workload}?{q}"))?;
            serde_json::from_str(&body).map_err(|e| format!("bad answer: {e}"))?
        }
        (None, Some(dir)) => {
            let path = dir.join(format!("{workload}.env"));
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
        }
        (None, None) => return Err(format!("env needs --url or --dir\n{USAGE}")),
    };
    let mut out = std::io::stdout();
    for (k, v) in pairs {
        let _ = writeln!(out, "export {k}={}", shell_quote(&v));
    }
    Ok(())
}

/// `MPGATE_EMULATOR_LISTEN` and `MPGATE_EMULATOR_WORLD`: the main address and the scenario for a
/// service container, whose command line a CI system may not let you set (GitHub Actions `services:`).
/// The flags win.
#[allow(clippy::disallowed_methods)] // the emulator's own configuration, read once at start
fn from_env() -> Result<Args, String> {
    let mut args = Args { listen: Listen::default(), world: None, world_json: None, env_dir: None };
    if let Some(v) = std::env::var_os("MPGATE_EMULATOR_LISTEN") {
        let v = v.to_string_lossy();
        args.listen.main = v.parse().map_err(|e| format!("MPGATE_EMULATOR_LISTEN={v:?}: {e}"))?;
    }
    if let Some(v) = std::env::var_os("MPGATE_EMULATOR_WORLD") {
        args.world = Some(PathBuf::from(v));
    }
    if let Some(v) = std::env::var_os("MPGATE_EMULATOR_WORLD_JSON") {
        args.world_json = Some(v.to_string_lossy().into_owned());
    }
    Ok(args)
}

fn parse_args() -> Result<Args, String> {
    let mut args = from_env()?;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--listen" => args.listen.main = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--tls-listen" => {
                args.listen.tls_main = Some(value()?.parse().map_err(|e| format!("--tls-listen: {e}"))?);
            }
            "--ecs-agent" => args.listen.ecs_agent = Some(value()?.parse().map_err(|e| format!("--ecs-agent: {e}"))?),
            "--pod-identity-agent" => {
                let v = value()?;
                args.listen.pod_identity_agent = Some(v.parse().map_err(|e| format!("--pod-identity-agent: {e}"))?);
            }
            "--imds" => {
                let v = value()?;
                let (id, addr) = v.split_once('=').ok_or_else(|| format!("--imds wants WORKLOAD=ADDR, got {v:?}"))?;
                let addr: SocketAddr = addr.parse().map_err(|e| format!("--imds: {e}"))?;
                args.listen.imds.push((id.to_string(), addr));
            }
            "--world" => args.world = Some(PathBuf::from(value()?)),
            "--variance" => {
                let v = value()?;
                args.listen.variance =
                    Some(v.parse().map_err(|_| format!("--variance wants a seed (0 to 2^64-1), got {v:?}"))?);
            }
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
    if std::env::args().nth(1).as_deref() == Some("env") {
        return env_command(std::env::args().skip(2));
    }
    let args = parse_args()?;
    let world = match (&args.world, &args.world_json) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            World::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        (None, Some(text)) => World::from_json(text).map_err(|e| format!("MPGATE_EMULATOR_WORLD_JSON: {e}"))?,
        (None, None) => World::demo(),
    };
    let emu = Emulator::start_with(world, args.listen).map_err(|e| format!("cannot start: {e}"))?;
    if let Some(dir) = &args.env_dir {
        write_env_files(&emu, dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let mut out = std::io::stdout();
    // Launchers wait for this exact line, so flush it before serving.
    if let Some(seed) = emu.variance() {
        eprintln!("mpgate-emulator: variance seed {seed}");
    }
    let _ = writeln!(out, "mpgate-emulator listening on {}", emu.url());
    if let Some(tls) = emu.tls_url() {
        let _ = writeln!(out, "mpgate-emulator listening on {tls}");
    }
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
