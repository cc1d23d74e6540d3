//! The emulator's source is laid out in layers that only depend downward, so it reads bottom-up:
//! `model` → `wire` → `state` → `services` → `server` (src/<layer>/, each with its rule in its
//! mod.rs header). This test reads src/**/*.rs and fails when a file names, by a `crate::` path, a
//! layer above its own or the crate root (whose re-exports would hide where an item lives), when a
//! `super::super::` path climbs out of its layer, when a file lies outside the layer directories
//! (only src/lib.rs and src/main.rs sit at the top), or when files of one layer import each other
//! in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: [&str; 5] = ["model", "wire", "state", "services", "server"];

fn rank(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == name)
}

/// `source` with every line that is a comment blanked out, so doc text may name any layer.
fn code_only(source: &str) -> String {
    let lines = source.lines().map(|l| if l.trim_start().starts_with("//") { "" } else { l });
    lines.collect::<Vec<_>>().join("\n")
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The paths a `crate::`, `super::` or `use` group continues with: `crate::model::x` gives
/// `model::x`; `crate::{model::x, wire}` gives `model::x` and `wire`.
fn paths_after(text: &str) -> Vec<String> {
    let Some(group) = text.strip_prefix('{') else {
        let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(text.len());
        return vec![text[..end].to_string()];
    };
    let (mut depth, mut item, mut out) = (0, String::new(), Vec::new());
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut item));
                continue;
            }
            _ => {}
        }
        item.push(c);
    }
    out.push(item);
    out.into_iter().map(|i| i.trim().to_string()).filter(|i| !i.is_empty()).collect()
}

/// Every (line, path) in `source` that follows `prefix` (e.g. "crate::"); a group may span lines.
fn uses(source: &str, prefix: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (at, _) in source.match_indices(prefix) {
        let line = source[..at].matches('\n').count() + 1;
        out.extend(paths_after(&source[at + prefix.len()..]).into_iter().map(|p| (line, p)));
    }
    out
}

/// Why the code of a file in `layer` breaks the layering, one line per offending path.
fn violations(layer: usize, source: &str) -> Vec<String> {
    let code = code_only(source);
    let mut out = Vec::new();
    for (line, path) in uses(&code, "crate::") {
        let first = ident(&path);
        match rank(first) {
            Some(r) if r <= layer => {}
            Some(_) => out.push(format!("line {line}: crate::{path} reaches up to `{first}`")),
            None => out.push(format!("line {line}: crate::{path} goes through the crate root, not a layer")),
        }
    }
    for (line, _) in uses(&code, "super::super") {
        out.push(format!("line {line}: super::super climbs out of the layer"));
    }
    out
}

/// The sibling modules of one layer that `source` names (`super::x`, `crate::<layer>::x`).
fn siblings(layer: &str, source: &str, files: &BTreeSet<String>) -> BTreeSet<String> {
    let code = code_only(source);
    let own = format!("crate::{layer}::");
    let mut named: Vec<String> = uses(&code, "super::").into_iter().map(|(_, p)| p).collect();
    named.extend(uses(&code, &own).into_iter().map(|(_, p)| p));
    named.iter().map(|p| ident(p).to_string()).filter(|m| files.contains(m)).collect()
}

/// A circle in `edges` (module → modules it names), if there is one.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == m) {
            return Some(path[at..].iter().cloned().chain([m.to_string()]).collect());
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|m| visit(m, edges, &mut Vec::new(), &mut done))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_layer_depends_only_on_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    let mut per_layer: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for path in &files {
        let rel = path.strip_prefix(&src).expect("under src").to_path_buf();
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        if parts == ["lib.rs"] || parts == ["main.rs"] {
            continue;
        }
        let Some(layer) = parts.first().and_then(|d| rank(d)).filter(|_| parts.len() == 2) else {
            problems.push(format!("{}: not in a layer directory (src/<layer>/<file>.rs)", rel.display()));
            continue;
        };
        let source = std::fs::read_to_string(path).expect("read source");
        for v in violations(layer, &source) {
            problems.push(format!("{}: {v}", rel.display()));
        }
        let module = parts[1].trim_end_matches(".rs").to_string();
        per_layer.entry(LAYERS[layer]).or_default().insert(module, source);
    }
    assert!(per_layer.len() == LAYERS.len(), "a layer has no files: {:?}", per_layer.keys());
    for (layer, modules) in &per_layer {
        let names: BTreeSet<String> = modules.keys().filter(|m| *m != "mod").cloned().collect();
        let edges = modules.iter().map(|(m, source)| (m.clone(), siblings(layer, source, &names))).collect();
        if let Some(c) = cycle(&edges) {
            problems.push(format!("src/{layer}/: files import each other in a circle: {}", c.join(" → ")));
        }
    }
    assert!(problems.is_empty(), "layering broken:\n{}", problems.join("\n"));
}

/// The checks above catch what they are for; otherwise the test could pass on anything.
#[test]
fn the_checks_find_upward_paths_root_paths_and_circles() {
    let (wire, services) = (rank("wire").expect("wire"), rank("services").expect("services"));
    assert!(violations(wire, "use crate::model::clock;\nuse super::ids::request_id;\n").is_empty());
    assert!(violations(services, "use crate::{model::world::World, state::Shared, wire};\n").is_empty());
    assert!(violations(wire, "//! May not use crate::server.\nfn f() {}\n").is_empty(), "comments are not code");
    assert_eq!(violations(wire, "use crate::state::Shared;\n").len(), 1);
    assert_eq!(violations(wire, "let x = crate::services::auth::f();\n").len(), 1);
    assert_eq!(violations(wire, "use crate::{\n    model::clock,\n    server::Site,\n};\n").len(), 1);
    assert_eq!(violations(services, "use crate::Listen;\n").len(), 1, "the root's re-exports hide the layer");
    assert_eq!(violations(wire, "use super::super::server;\n").len(), 1);

    let names: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let deps = |src: &str| siblings("wire", src, &names);
    assert_eq!(
        deps("use super::b::X;\nuse crate::wire::c;\nuse crate::model::a;\n"),
        ["b", "c"].map(String::from).into()
    );
    let graph = |e: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in e {
            g.entry(from.to_string()).or_default().insert(to.to_string());
        }
        g
    };
    assert_eq!(cycle(&graph(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])).map(|c| c.len()), Some(4));
}
