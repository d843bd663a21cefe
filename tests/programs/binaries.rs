//! Finding the compiled example binaries and benchmark tools, building them when they are missing
//! or stale.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use super::pipes::{drain, wait_with_deadline, ChildGuard};

/// How long building the examples may take, when the test has to do it.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

/// The path of the compiled example `name`, built with the features that are off by default and
/// on in this test binary (`cargo test --features tls` tests examples that serve TLS; a default
/// `cargo test` tests examples without it).
///
/// A binary's age does not tell which features it was built with, so the first call in each test
/// binary runs `cargo build --examples [--features ...]` into the same target directory: cargo
/// rebuilds what is missing, stale or built with other features, and does nothing (in well under
/// a second) when `cargo test` has built them so already.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let path = profile_dir().join("examples").join(name);
    let features = EXTRA_FEATURES.join(",");
    let mut build = vec!["build", "--examples"];
    if !features.is_empty() {
        build.extend(["--features", &features]);
    }
    if let Err(e) = BUILT.get_or_init(|| run_build(&build)) {
        panic!("cannot build {}: {e}", path.display());
    }
    assert!(
        path.exists(),
        "{} is missing even after `cargo {}`",
        path.display(),
        build.join(" ")
    );
    path
}

/// The library's features that are off by default and on in this test binary's build.
const EXTRA_FEATURES: &[&str] = &[
    #[cfg(feature = "tls")]
    "tls",
    #[cfg(feature = "metrics")]
    "metrics",
];

/// The path of the compiled benchmark tool `name` (a binary of the `socketserver-bench` package
/// in `bench/`, such as `loadgen`), building it first if it is missing or stale.
///
/// `cargo test` builds only the root package's targets, so the first test to ask runs
/// `cargo build -p socketserver-bench --bins` into the same target directory. That builds none of
/// the bench package's dev-dependencies (Criterion).
pub fn bench_tool(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let path = profile_dir().join(name);
    built(
        &BUILT,
        path,
        &[
            "src",
            "examples/common",
            "bench/loadgen",
            "bench/Cargo.toml",
            "Cargo.toml",
        ],
        &["build", "-p", "socketserver-bench", "--bins"],
    )
}

/// `path`, after running `cargo <build>` once per test binary if it is missing or older than
/// the `sources` (relative to the crate's root).
fn built(
    once: &OnceLock<Result<(), String>>,
    path: PathBuf,
    sources: &[&str],
    build: &[&str],
) -> PathBuf {
    if !path.exists() || older_than_sources(&path, sources) {
        if let Err(e) = once.get_or_init(|| run_build(build)) {
            panic!("cannot build {}: {e}", path.display());
        }
    }
    assert!(
        path.exists(),
        "{} is missing even after `cargo {}`",
        path.display(),
        build.join(" ")
    );
    path
}

/// `target/<profile>`: the test binary lives in its `deps` directory.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().expect("the test binary's directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("the profile directory").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Whether any file under one of `sources` changed after `binary` was built.
fn older_than_sources(binary: &Path, sources: &[&str]) -> bool {
    fn newest(path: &Path) -> Option<SystemTime> {
        let meta = fs::metadata(path).ok()?;
        if !meta.is_dir() {
            return meta.modified().ok();
        }
        fs::read_dir(path)
            .ok()?
            .filter_map(|entry| newest(&entry.ok()?.path()))
            .max()
    }
    let Some(built) = fs::metadata(binary).and_then(|m| m.modified()).ok() else {
        return true;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    sources
        .iter()
        .filter_map(|part| newest(&root.join(part)))
        .any(|changed| changed > built)
}

fn run_build(build: &[&str]) -> Result<(), String> {
    let profile_dir = profile_dir();
    let mut command = Command::new(env!("CARGO"));
    command.args(build).current_dir(env!("CARGO_MANIFEST_DIR"));
    // Build into the target directory this test binary came from, with the same profile.
    if let Some(target_dir) = profile_dir.parent() {
        command.arg("--target-dir").arg(target_dir);
    }
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
    }
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let mut guard = ChildGuard(Some(child));
    let status = wait_with_deadline(guard.child(), BUILD_TIMEOUT)
        .ok_or_else(|| format!("{what} did not finish within {BUILD_TIMEOUT:?}"))?;
    guard.0 = None;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status}):\n{}", stderr.all(&what)))
    }
}
