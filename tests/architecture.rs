//! The import rules of ARCHITECTURE.md ("Layers"), checked on the source:
//! every `crate::server::X` (and `crate::client::X`) path outside comments
//! and unit tests goes from a module to one in a lower layer, so the module
//! graph has no circle; the core parses no YAML and touches no file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The server's modules by layer, lowest first: a module may name only
/// modules of lower layers. Kept equal to ARCHITECTURE.md's table.
const SERVER_LAYERS: &[&[&str]] = &[
    &["model", "pattern", "files", "daemon"],
    &["store", "views", "silence", "tags", "host_filter"],
    &["msg"],
    &["journal", "dns", "notify", "state", "systemd", "peers", "alertmanager"],
    &["core", "udp"],
    &["http"],
    &["ws"],
    &["config"],
    &["ctl"],
];

/// hbc's modules, likewise (its parent, `client/mod.rs`, is above them all).
const CLIENT_LAYERS: &[&[&str]] = &[&["nagios"], &["plugins", "sender"], &["config", "run"]];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's code without its unit tests and without comments.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The top-level module a file belongs to (`core/table.rs` → `core`), or
/// None for the area's parent (`mod.rs`).
fn module_of(area: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(area).unwrap();
    let first = relative.components().next()?.as_os_str().to_string_lossy().into_owned();
    match first.strip_suffix(".rs") {
        Some("mod") => None,
        Some(name) => Some(name.to_string()),
        None => Some(first),
    }
}

/// Each module's imports of its area's other modules: `crate::AREA::NAME`.
fn imports(area: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(area);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let needle = format!("crate::{area}::");
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let Some(from) = module_of(&root, &file) else { continue };
        let code = code(&file);
        for (at, _) in code.match_indices(&needle) {
            let rest = &code[at + needle.len()..];
            let to: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if to != from {
                let shown = file.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap().display().to_string();
                graph.entry(from.clone()).or_default().entry(to).or_insert(shown);
            }
        }
    }
    graph
}

fn check_layers(area: &str, layers: &[&[&str]]) {
    let layer_of = |name: &str| layers.iter().position(|layer| layer.contains(&name));
    let mut wrong = Vec::new();
    for (from, targets) in imports(area) {
        let Some(from_layer) = layer_of(&from) else {
            wrong.push(format!("{area}::{from} is in no layer: add it to the table here and in ARCHITECTURE.md"));
            continue;
        };
        for (to, file) in targets {
            match layer_of(&to) {
                Some(to_layer) if to_layer < from_layer => {}
                Some(_) => wrong.push(format!("{file}: {area}::{from} imports {area}::{to}, which is not below it")),
                None => wrong.push(format!("{area}::{to} (named in {file}) is in no layer")),
            }
        }
    }
    assert!(wrong.is_empty(), "imports against ARCHITECTURE.md's layers:\n{}", wrong.join("\n"));
}

#[test]
fn server_modules_import_only_lower_layers() {
    check_layers("server", SERVER_LAYERS);
}

#[test]
fn client_modules_import_only_lower_layers() {
    check_layers("client", CLIENT_LAYERS);
}

#[test]
fn the_core_parses_no_yaml_and_touches_no_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server/core");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    for file in files {
        let code = code(&file);
        for forbidden in ["serde_yaml", "std::fs", "File::", "OpenOptions"] {
            assert!(!code.contains(forbidden), "{} uses {forbidden}", file.display());
        }
    }
}

#[test]
fn architecture_md_lists_the_same_layers() {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap();
    for (area, layers) in [("server", SERVER_LAYERS), ("client", CLIENT_LAYERS)] {
        for (n, layer) in layers.iter().enumerate() {
            let row =
                format!("| {area} | {n} | {} |", layer.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", "));
            assert!(text.contains(&row), "ARCHITECTURE.md lacks the row {row}");
        }
    }
}
