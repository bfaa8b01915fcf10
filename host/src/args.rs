//! The command line: the usage and help text, the flags parsed into [`Args`],
//! and the checks on their combinations (a bad command line is exit status 2).

use std::path::PathBuf;

pub(crate) const USAGE: &str = "usage: bpr-host [--ops LIBRARY]... --model SAVED_MODEL_DIR \
--input [NAME=]FILE.npy|FILE.json|FILE.bin|DIR ... [--signature NAME] [--tag TAG] [--output FILE] [--print] \
[--names A,B,...] [--repeat N [--rounds R]] [--navi]";

const HELP: &str = "
  --ops LIBRARY      op library to load before the model (e.g. target/release/libbpr_ops.so);
                     repeatable. A bpr_ops library built for another TensorFlow is refused.
  --model DIR        SavedModel directory
  --input FILE       the batch: a .npy array or a .json nested list for the only input, or
                     NAME=FILE for the input NAME; a .json object maps input names to lists;
                     a .bin file is fed as its raw bytes, a uint8 vector (request bytes),
                     or, for a string input, as one element; a directory feeds its .bin
                     files (name order) as a string vector [N], one serialized request each,
                     as does NAME=FILE.bin given more than once (binary-safe: any bytes)
  --signature NAME   signature to run (default serving_default)
  --tag TAG          meta graph tag (default serve)
  --output FILE      write the response bytes (the uint8 [1, N] output) to FILE; for a string
                     output (one response per request) FILE is a directory, created if needed,
                     that gets one response-NNNNN.bin per element
  --print            print the decoded records as a table (per response for a string output)
  --names A,B,...    feature names, comma-separated (repeatable): with --print, a key that one of
                     them hashes to (twml's feature id) is shown as that name, as bpr-decode --names
  --repeat N         time N session runs per model instead (each model loaded once, its inputs
                     built once) and print one JSON line per model: the time per run of each round,
                     and their median. --model may then be given more than once: the models run
                     round by round in turn (each round starting with the next model), so their
                     times are measured interleaved
  --rounds R         rounds for --repeat (default 15), each of N / R runs per model
  --navi             serve the batch as Twitter's navi does: every .bin file is one caller's
                     request (one row), the callers' rows are one string [N] input, and every
                     signature output is split by rows as navi splits it (2-D outputs only,
                     string outputs decoded as UTF-8, float/int64/int32/string dtypes only);
                     what navi would panic on is an error. --output DIR gets caller-NNNNN.json,
                     each caller's rows; --print shows them, base64 responses as records
  --version          print the TensorFlow version the host runs

TensorFlow's own log lines are hidden unless TF_CPP_MIN_LOG_LEVEL is set (e.g. 0 for all).";

/// Why bpr-host stopped: a bad command line (exit 2, with the usage) or a
/// failed run (exit 1).
pub(crate) enum Failure {
    Usage(String),
    Run(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Run(s)
    }
}

#[derive(Default)]
pub(crate) struct Args {
    pub(crate) ops: Vec<PathBuf>,
    pub(crate) models: Vec<PathBuf>,
    pub(crate) inputs: Vec<(Option<String>, PathBuf)>,
    pub(crate) signature: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) output: Option<PathBuf>,
    pub(crate) print: bool,
    pub(crate) names: Vec<String>,
    pub(crate) repeat: Option<usize>,
    pub(crate) rounds: Option<usize>,
    pub(crate) navi: bool,
}

fn count(name: &str, v: &str) -> Result<usize, Failure> {
    v.parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| Failure::Usage(format!("{name} takes a positive integer, got {v:?}")))
}

pub(crate) fn parse_args() -> Result<Option<Args>, Failure> {
    let mut args = Args::default();
    let mut it = std::env::args_os().skip(1);
    while let Some(flag) = it.next() {
        let flag = flag.to_string_lossy().into_owned();
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (flag.clone(), None),
        };
        let mut value = || -> Result<String, Failure> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .map(|v| v.to_string_lossy().into_owned())
                    .ok_or_else(|| Failure::Usage(format!("{name} needs a value"))),
            }
        };
        match name.as_str() {
            "--ops" => args.ops.push(value()?.into()),
            "--model" => args.models.push(value()?.into()),
            "--input" => {
                let v = value()?;
                let looks_named = v
                    .split_once('=')
                    .filter(|(n, _)| !n.is_empty() && !n.contains('/'));
                args.inputs.push(match looks_named {
                    Some((n, f)) => (Some(n.to_string()), f.into()),
                    None => (None, v.into()),
                });
            }
            "--signature" => args.signature = Some(value()?),
            "--tag" => args.tag = Some(value()?),
            "--output" => args.output = Some(value()?.into()),
            "--print" => args.print = true,
            "--navi" => args.navi = true,
            "--names" => args.names.extend(
                value()?
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(String::from),
            ),
            "--repeat" => args.repeat = Some(count(&name, &value()?)?),
            "--rounds" => args.rounds = Some(count(&name, &value()?)?),
            "--version" => {
                println!("TensorFlow {}", crate::model::tf_version()?);
                return Ok(None);
            }
            "-h" | "--help" => {
                println!("{USAGE}\n{HELP}");
                return Ok(None);
            }
            other => return Err(Failure::Usage(format!("unknown argument {other:?}"))),
        }
    }
    if args.models.is_empty() {
        return Err(Failure::Usage("--model is required".into()));
    }
    if args.inputs.is_empty() {
        return Err(Failure::Usage("--input is required".into()));
    }
    if args.repeat.is_none() {
        if args.models.len() > 1 {
            return Err(Failure::Usage(
                "--model is given more than once: only --repeat runs several models".into(),
            ));
        }
        if args.rounds.is_some() {
            return Err(Failure::Usage("--rounds needs --repeat".into()));
        }
    }
    if args.navi && args.repeat.is_some() {
        return Err(Failure::Usage(
            "--navi serves one batch: it takes no --repeat".into(),
        ));
    }
    if args.repeat.is_some() && (args.output.is_some() || args.print) {
        return Err(Failure::Usage(
            "--repeat times the runs: it takes neither --output nor --print".into(),
        ));
    }
    if args.output.is_none() && !args.print && args.repeat.is_none() {
        return Err(Failure::Usage(
            "nothing to do: give --output FILE and/or --print".into(),
        ));
    }
    Ok(Some(args))
}
