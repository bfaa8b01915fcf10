//! Runs Apache Thrift's compiler (`thrift --gen rs`) on thrift/*.thrift into OUT_DIR, so the
//! generated structs the tests decode our bytes with are made from the IDL at build time
//! rather than committed. `THRIFT` names the compiler (default: `thrift` on PATH).

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `thrift` crate in Cargo.toml is 0.17: generated code from another compiler
/// version calls functions that crate does not have (or calls them differently).
const WANT: &str = "0.17";
const IDL: [&str; 3] = ["tensor", "data", "prediction_service"];
const INSTALL: &str = "install Apache Thrift's compiler 0.17: `apt-get install thrift-compiler` \
    (Debian 12), `dnf install thrift` (Fedora), or run scripts/setup.sh; or set THRIFT to its path";

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let idl_dir = manifest.join("../../thrift");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let compiler = env::var_os("THRIFT").unwrap_or_else(|| "thrift".into());
    println!("cargo:rerun-if-env-changed=THRIFT");
    println!("cargo:rerun-if-changed=build.rs");

    check_version(Path::new(&compiler));
    let mut modules = String::new();
    for name in IDL {
        let idl = idl_dir.join(format!("{name}.thrift"));
        println!("cargo:rerun-if-changed={}", idl.display());
        let status = Command::new(&compiler)
            .args(["--gen", "rs", "-out"])
            .arg(&out)
            .arg(&idl)
            .status()
            .unwrap_or_else(|e| fail(&format!("cannot run {compiler:?}: {e}")));
        if !status.success() {
            fail(&format!(
                "`{compiler:?} --gen rs` failed on {} ({status})",
                idl.display()
            ));
        }
        let generated = out.join(format!("{name}.rs"));
        if !generated.is_file() {
            fail(&format!("{compiler:?} wrote no {}", generated.display()));
        }
        // The generated files start with inner attributes, which `include!` cannot take
        // inside a module: `#[path]` to the absolute file keeps them used unmodified.
        writeln!(
            modules,
            "#[allow(dead_code, clippy::all)]\n#[path = {:?}]\npub mod {name};",
            generated
                .to_str()
                .unwrap_or_else(|| fail("OUT_DIR is not UTF-8"))
        )
        .unwrap();
    }
    fs::write(out.join("modules.rs"), modules)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", out.display())));
}

fn check_version(compiler: &Path) {
    let output = Command::new(compiler)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            fail(&format!(
                "no Thrift compiler: running `{} --version` failed ({e}); {INSTALL}",
                compiler.display()
            ))
        });
    // "Thrift version 0.17.0"
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.split_whitespace().last().unwrap_or("").to_string();
    if !output.status.success() || !(version == WANT || version.starts_with(&format!("{WANT}."))) {
        fail(&format!(
            "`{} --version` says {:?}; the generated code must come from Thrift {WANT}.x, \
             the version of the `thrift` crate it calls; {INSTALL}",
            compiler.display(),
            text.trim()
        ));
    }
}

fn fail(message: &str) -> ! {
    // A panic's message in a build script is shown with backtrace noise; an error line and
    // exit code 1 are what cargo prints plainly under "failed to run custom build command".
    eprintln!("error: bpr-thrift-gen: {message}");
    std::process::exit(1)
}
