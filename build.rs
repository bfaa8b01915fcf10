//! Finds TensorFlow through Python, compiles the C++ shim against it, and
//! generates the Rust side of the C ABI with bindgen.
//!
//! Every flag comes from `tf.sysconfig`, never hard-coded: the C++ ABI
//! (`_GLIBCXX_USE_CXX11_ABI`) and the language standard must be the ones the
//! TensorFlow binary was built with, or the library loads and then crashes.

use std::env;
use std::path::PathBuf;
use std::process::{exit, Command};

const SHIM_SOURCES: &[&str] = &[
    "cpp_shim/ops.cc",
    "cpp_shim/kernels.cc",
    "cpp_shim/request_ops.cc",
    "cpp_shim/request_kernels.cc",
    "cpp_shim/tensor_ops.cc",
    "cpp_shim/compat.cc",
    "cpp_shim/responses.cc",
    "cpp_shim/block_dataset.cc",
    // twml's model ops (issue 37): registration and kernels, the math in model/.
    "cpp_shim/model_discretize.cc",
    "cpp_shim/model_sparse.cc",
    "cpp_shim/model_tensors.cc",
];
const SHIM_HEADER: &str = "cpp_shim/include/bpr_ops.h";
/// Headers of the shim only (not for bindgen).
const SHIM_PRIVATE_HEADERS: &[&str] = &["cpp_shim/plain_allocator.h", "cpp_shim/kernel_util.h"];

/// Prints one message and stops the build (a panic would add a backtrace hint
/// that hides the message).
fn fail(message: &str) -> ! {
    eprintln!("\nerror: {message}\n");
    exit(1);
}

struct TfConfig {
    version: String,
    compile_flags: Vec<String>,
    link_flags: Vec<String>,
    lib_dir: String,
}

fn tensorflow(python: &str) -> TfConfig {
    const SCRIPT: &str = "import tensorflow as tf\n\
        print(tf.__version__)\n\
        print('\\x1f'.join(tf.sysconfig.get_compile_flags()))\n\
        print('\\x1f'.join(tf.sysconfig.get_link_flags()))\n\
        print(tf.sysconfig.get_lib())\n";
    let how = "set PYTHON to a Python that has tensorflow-cpu==2.21.0 installed \
               (for example `PYTHON=$PWD/.venv/bin/python cargo build --release`), \
               or run `make build`, which creates .venv with it";
    let output = Command::new(python)
        .args(["-c", SCRIPT])
        .env("TF_CPP_MIN_LOG_LEVEL", "3")
        .output()
        .unwrap_or_else(|e| {
            fail(&format!(
                "bpr-ops: could not run the Python `{python}` ({e}); {how}"
            ))
        });
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        fail(&format!(
            "bpr-ops: TensorFlow could not be imported by the Python `{python}` ({last}); {how}"
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    // TensorFlow may print banners before our lines: take the last four.
    let lines: Vec<&str> = stdout.lines().collect();
    if lines.len() < 4 {
        fail(&format!(
            "bpr-ops: unexpected output from `{python}`: {stdout}"
        ));
    }
    let l = &lines[lines.len() - 4..];
    let split = |s: &str| {
        s.split('\x1f')
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect()
    };
    TfConfig {
        version: l[0].trim().to_string(),
        compile_flags: split(l[1]),
        link_flags: split(l[2]),
        lib_dir: l[3].trim().to_string(),
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={SHIM_HEADER}");
    for src in SHIM_SOURCES.iter().chain(SHIM_PRIVATE_HEADERS) {
        println!("cargo:rerun-if-changed={src}");
    }

    // The same Python can import another TensorFlow (pip's isolated build
    // environments differ only in PYTHONPATH): rebuild when what it finds changes.
    println!("cargo:rerun-if-env-changed=PYTHONPATH");
    let python = env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let tf = tensorflow(&python);
    println!(
        "cargo:rerun-if-changed={}/libtensorflow_framework.so.2",
        tf.lib_dir
    );
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    // The shim: static archive, linked whole so the REGISTER_OP and
    // REGISTER_KERNEL_BUILDER static initialisers are kept by the linker.
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .files(SHIM_SOURCES)
        .include("cpp_shim/include")
        .warnings(false)
        .flag_if_supported("-Wno-deprecated-declarations")
        .define("NDEBUG", None)
        .cargo_metadata(false);
    for flag in &tf.compile_flags {
        build.flag(flag);
    }
    let compiler = build.get_compiler();
    build.compile("bpr_shim");
    println!("cargo:rustc-link-search=native={}", out_dir.display());
    println!("cargo:rustc-link-lib=static:+whole-archive=bpr_shim");
    // The shim's C++ runtime is the libstdc++ (and libgcc_s) of the compiler
    // that built it, TensorFlow's: linked by file, so that a linker with a C++
    // runtime of its own (zig, which a release wheel links with to reach old
    // glibc versions: scripts/build_for_tf.sh) cannot put libc++ in its place.
    for lib in ["libstdc++.so.6", "libgcc_s.so.1"] {
        match Command::new(compiler.path())
            .arg(format!("-print-file-name={lib}"))
            .output()
        {
            Ok(out) if out.status.success() && out.stdout.starts_with(b"/") => {
                let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
                println!("cargo:rustc-link-arg={path}");
            }
            // Not found by name: leave it to the linker's own search.
            _ => println!(
                "cargo:rustc-link-lib=dylib={}",
                &lib[3..lib.find('.').unwrap_or(lib.len())]
            ),
        }
    }

    for flag in &tf.link_flags {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(file) = flag.strip_prefix("-l:") {
            println!("cargo:rustc-link-lib=dylib:+verbatim={file}");
        } else if let Some(name) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={name}");
        } else {
            println!("cargo:rustc-link-arg={flag}");
        }
    }
    // Found at run time without LD_LIBRARY_PATH: first TensorFlow next to an
    // installed package (site-packages/bpr_ops/../tensorflow), then the one we
    // built against. In a Python process TensorFlow is already loaded and the
    // soname matches, so neither path is searched there. A wheel sets
    // BPR_OPS_RPATH to the first alone: the build machine's path means
    // nothing on the machines the wheel is installed on.
    println!("cargo:rerun-if-env-changed=BPR_OPS_RPATH");
    let rpath = env::var("BPR_OPS_RPATH")
        .unwrap_or_else(|_| format!("$ORIGIN/../tensorflow:{}", tf.lib_dir));
    for dir in rpath.split(':').filter(|d| !d.is_empty()) {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }

    println!("cargo:rustc-env=BPR_OPS_TF_VERSION={}", tf.version);

    let bindings = bindgen::Builder::default()
        .header(SHIM_HEADER)
        .allowlist_type("bpr_.*")
        .allowlist_function("bpr_.*")
        .allowlist_var("BPR_.*")
        .generate()
        .unwrap_or_else(|e| {
            fail(&format!(
                "bpr-ops: bindgen could not parse {SHIM_HEADER} ({e}). bindgen needs libclang: \
                 install it (Debian/Ubuntu: `apt-get install libclang-dev`) or point \
                 LIBCLANG_PATH at the directory that holds libclang.so"
            ))
        });
    bindings
        .write_to_file(out_dir.join("bpr_ops_sys.rs"))
        .unwrap_or_else(|e| fail(&format!("bpr-ops: writing bindings: {e}")));
}
