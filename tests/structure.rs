//! The crate's layers, checked on its sources: the state every layer shares lives in `control/`,
//! on the ground floor, so the handlers, the modes, the process machinery and the message loop
//! import nothing from the server that is built on them, and `control/` imports nothing above
//! the few plain types it holds.

use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// The lines of `file` that name a module path, comments left out.
fn code_lines(file: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim_start().starts_with("//"))
        .map(|(n, line)| (n + 1, line.to_string()))
        .collect()
}

/// The places in the folders `dirs` (under `src/`) that name `crate::<module>` for one of
/// `forbidden`.
fn imports_of(dirs: &[&str], forbidden: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for dir in dirs {
        for file in sources(&src.join(dir)) {
            for (n, line) in code_lines(&file) {
                for module in forbidden {
                    let named = line.contains(&format!("crate::{module}"))
                        || line.contains(&format!("super::super::{module}"));
                    if named {
                        found.push(format!("{}:{n}: {}", file.display(), line.trim()));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn handlers_modes_processes_and_the_message_loop_import_nothing_from_the_server() {
    let found = imports_of(&["handler", "mode", "process", "message"], &["server"]);
    assert!(
        found.is_empty(),
        "imports of server/:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_shared_control_state_imports_nothing_above_the_ground_floor() {
    let above = [
        "server", "handler", "mode", "process", "message", "systemd", "socket", "proxy", "framing",
        "auth",
    ];
    let found = imports_of(&["control"], &above);
    assert!(
        found.is_empty(),
        "control/ imports from above it:\n{}",
        found.join("\n")
    );
}
