//! bpr-host: a serving host on the TensorFlow C API (through the `tensorflow`
//! crate), as Twitter's navi or any service on the C API is one.
//!
//! It loads op libraries at run time (navi's `--customops_lib`), then a
//! SavedModel, feeds one batch read from a file, and writes the response
//! bytes to a file and/or prints the decoded records. Every error is one line
//! on stderr and exit status 1 (2 for a bad command line).
//!
//! The modules, by job: `args` (the command line), `batch` (reading the
//! input files), `inputs` (batches into tensors that fit the signature),
//! `model` (op libraries, the SavedModel, running it, --repeat), `output`
//! (writing and printing the response), `navi` (--navi), `bytes`
//! (binary-safe string tensors), `table` (records printed as a table).

mod args;
mod batch;
mod bytes;
mod inputs;
mod model;
mod navi;
mod output;
mod table;

use std::fs::File;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::OnceLock;

use args::{parse_args, Args, Failure, USAGE};

/// TensorFlow's messages may span lines; ours are one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Loads the op libraries and models, then times them (--repeat), serves the
/// batch as navi would (--navi), or writes and/or prints the response.
fn run(args: Args) -> Result<(), String> {
    let running = model::tf_version()?;
    for path in &args.ops {
        model::load_ops(path, &running)?;
    }
    let served = args
        .models
        .iter()
        .map(|m| model::load(m, &args))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(runs) = args.repeat {
        return model::repeat(&served, runs, args.rounds.unwrap_or(15));
    }
    let s = &served[0];
    let (sig_name, out_name) = (&s.sig_name, &s.out_name);
    let names = output::name_of_id(&args.names)?;
    if args.navi {
        let splits = s.navi()?;
        if let Some(dir) = &args.output {
            navi::write(dir, &splits, s.callers)?;
        }
        if args.print {
            navi::print(&splits, s.callers, &names)?;
        }
        return Ok(());
    }
    let response = s.response()?;
    output::deliver(response, &args, sig_name, out_name, &names)
}

/// The real stderr while TensorFlow's is sent to /dev/null; unset: not hidden.
static REAL_STDERR: OnceLock<File> = OnceLock::new();

/// TensorFlow writes log lines to stderr from its libraries' static
/// initialisers (the oneDNN banner, which no log level turns off), and on
/// every SavedModel load; a variable set after exec does not quiet them. So
/// unless the caller set TF_CPP_MIN_LOG_LEVEL (then they get TensorFlow's
/// logs as configured), fd 2 goes to /dev/null and our own messages go to the
/// real stderr. This runs from `.preinit_array`, which the dynamic loader
/// runs before any shared library's initialisers. On any failure stderr is
/// left as it was.
extern "C" fn hide_tensorflow_logs() {
    use rustix::fs::{open, Mode, OFlags};
    if std::env::var_os("TF_CPP_MIN_LOG_LEVEL").is_some() {
        return;
    }
    let Ok(real) = rustix::io::fcntl_dupfd_cloexec(std::io::stderr(), 3) else {
        return;
    };
    let Ok(null) = open("/dev/null", OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()) else {
        return;
    };
    if rustix::stdio::dup2_stderr(&null).is_ok() {
        let _ = REAL_STDERR.set(File::from(real));
    }
}

#[used]
#[link_section = ".preinit_array"]
static HIDE_TENSORFLOW_LOGS: extern "C" fn() = hide_tensorflow_logs;

/// Writes one message to the real stderr.
fn report(message: &str) {
    match REAL_STDERR.get() {
        Some(mut real) => {
            let _ = writeln!(real, "{message}");
        }
        None => eprintln!("{message}"),
    }
}

fn main() -> ExitCode {
    let outcome = parse_args().and_then(|args| match args {
        Some(args) => run(args).map_err(Failure::Run),
        None => Ok(()),
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            report(&format!("bpr-host: error: {msg}\n{USAGE}"));
            ExitCode::from(2)
        }
        Err(Failure::Run(msg)) => {
            report(&format!("bpr-host: error: {}", one_line(&msg)));
            ExitCode::from(1)
        }
    }
}
