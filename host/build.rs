//! Sets the run-time search path of the host to the TensorFlow wheel it links.
//!
//! Link-time discovery is tensorflow-sys's job (through host/tf-pkg-config,
//! see .cargo/config.toml); but a dependency's link arguments do not reach
//! this binary, and the wheel's directory is on no default library path, so
//! the RUNPATH is set here from the same `$PYTHON`.

use std::env;
use std::process::{exit, Command};

fn fail(message: &str) -> ! {
    eprintln!("\nerror: bpr-host: {message}\n");
    exit(1);
}

fn main() {
    println!("cargo:rerun-if-env-changed=PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let how = "set PYTHON to a Python that has tensorflow-cpu installed \
               (for example `PYTHON=$PWD/.venv/bin/python cargo build --release -p bpr-host`)";
    let output = Command::new(&python)
        .args([
            "-c",
            "import tensorflow as tf\nprint(tf.sysconfig.get_lib())",
        ])
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .unwrap_or_else(|e| fail(&format!("could not run the Python `{python}` ({e}); {how}")));
    if !output.status.success() {
        fail(&format!(
            "TensorFlow could not be imported by the Python `{python}`; {how}"
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lib_dir = stdout.lines().last().unwrap_or("").trim();
    if lib_dir.is_empty() {
        fail(&format!("`{python}` printed no TensorFlow directory"));
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{lib_dir}");
}
