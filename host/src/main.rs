//! bpr-host: a serving host on the TensorFlow C API (through the `tensorflow`
//! crate), as Twitter's navi or any service on the C API is one.
//!
//! It loads op libraries at run time (navi's `--customops_lib`), then a
//! SavedModel, feeds one batch read from a file, and writes the response
//! bytes to a file and/or prints the decoded records. Every error is one line
//! on stderr and exit status 1 (2 for a bad command line).

mod batch;
mod bytes;
mod navi;
mod table;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::OnceLock;

use batch::{Batch, Dtype, Typed, Values};
use bytes::Bytes;
use tensorflow::{
    DataType, Graph, Library, SavedModelBundle, SessionOptions, SessionRunArgs, Tensor, TensorInfo,
    TensorType,
};

const USAGE: &str = "usage: bpr-host [--ops LIBRARY]... --model SAVED_MODEL_DIR \
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

/// The marker the op library carries in its file, before the version it was
/// built against (see cpp_shim/include/bpr_ops.h, `bpr_tensorflow_version`).
const MARKER: &[u8] = b"BPR_OPS_BUILT_FOR_TENSORFLOW=";

enum Failure {
    Usage(String),
    Run(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Run(s)
    }
}

#[derive(Default)]
struct Args {
    ops: Vec<PathBuf>,
    models: Vec<PathBuf>,
    inputs: Vec<(Option<String>, PathBuf)>,
    signature: Option<String>,
    tag: Option<String>,
    output: Option<PathBuf>,
    print: bool,
    names: Vec<String>,
    repeat: Option<usize>,
    rounds: Option<usize>,
    navi: bool,
}

fn count(name: &str, v: &str) -> Result<usize, Failure> {
    v.parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| Failure::Usage(format!("{name} takes a positive integer, got {v:?}")))
}

fn parse_args() -> Result<Option<Args>, Failure> {
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
                println!("TensorFlow {}", tf_version()?);
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

fn tf_version() -> Result<String, String> {
    tensorflow::version().map_err(|e| format!("TensorFlow's version string is not UTF-8: {e}"))
}

/// TensorFlow's messages may span lines; ours are one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The TensorFlow version a bpr_ops library was built against, read from
/// the file (loading a library built for another TensorFlow fails with an
/// undefined-symbol error that names neither version). None: not a bpr_ops
/// library, so there is nothing to check.
fn built_for(bytes: &[u8]) -> Option<String> {
    let at = bytes.windows(MARKER.len()).position(|w| w == MARKER)?;
    let rest = &bytes[at + MARKER.len()..];
    let end = rest.iter().take(64).position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn minor(version: &str) -> Vec<&str> {
    version.split('.').take(2).collect()
}

fn load_ops(path: &Path, running: &str) -> Result<(), String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read op library {}: {e}", path.display()))?;
    if let Some(built) = built_for(&bytes) {
        if minor(&built) != minor(running) {
            return Err(format!(
                "op library {} was built for TensorFlow {built}, but this host runs TensorFlow \
                 {running}; rebuild it against TensorFlow {running} (PYTHON=<a Python with \
                 tensorflow {running}> cargo build --release)",
                path.display()
            ));
        }
    }
    let name = path
        .to_str()
        .ok_or_else(|| format!("op library path {} is not UTF-8", path.display()))?;
    Library::load(name).map_err(|e| {
        format!(
            "cannot load op library {}: {}",
            path.display(),
            one_line(&e.to_string())
        )
    })?;
    Ok(())
}

/// A tensor of any element type the host feeds.
enum Feed {
    F16(Tensor<half::f16>),
    F32(Tensor<f32>),
    F64(Tensor<f64>),
    I32(Tensor<i32>),
    I64(Tensor<i64>),
    U8(Tensor<u8>),
    Bool(Tensor<bool>),
    Str(Tensor<Bytes>),
}

fn tensor<T: TensorType>(shape: &[u64], values: &[T]) -> Result<Tensor<T>, String> {
    Tensor::new(shape)
        .with_values(values)
        .map_err(|e| one_line(&e.to_string()))
}

/// The signature input's static dims (None: unknown rank; -1 or None: unknown dim).
fn signature_dims(info: &TensorInfo) -> Option<Vec<Option<i64>>> {
    let shape = info.shape();
    let rank = shape.dims()?;
    Some((0..rank).map(|i| shape[i]).collect())
}

fn dims_text(dims: &[Option<i64>]) -> String {
    let want: Vec<String> = dims
        .iter()
        .map(|d| {
            d.filter(|&d| d >= 0)
                .map_or("None".into(), |d| d.to_string())
        })
        .collect();
    format!("[{}]", want.join(", "))
}

/// Feeds whole files (serialized requests): a string input gets one element
/// per file, a uint8 input the bytes of its one file.
fn feed_messages(
    name: &str,
    info: &TensorInfo,
    batch: &Batch,
    messages: &[Vec<u8>],
    want: Dtype,
) -> Result<Feed, String> {
    let dims = signature_dims(info);
    let src = &batch.source;
    let fits = |shape: &[u64]| {
        dims.as_ref().is_none_or(|d| {
            d.len() == shape.len()
                && d.iter()
                    .zip(shape)
                    .all(|(d, &b)| d.is_none_or(|d| d < 0 || d as u64 == b))
        })
    };
    let wanted = || dims.as_deref().map_or("<unknown>".into(), dims_text);
    match want {
        Dtype::Str => {
            let n = messages.len() as u64;
            let shape: Vec<u64> = if dims.as_ref().is_some_and(|d| d.is_empty()) && n == 1 {
                vec![]
            } else {
                vec![n]
            };
            if !fits(&shape) {
                return Err(format!(
                    "input {src} has {n} serialized requests (shape {shape:?}), but signature                      input '{name}' wants shape {}",
                    wanted()
                ));
            }
            let elements: Vec<Bytes> = messages.iter().map(|m| Bytes(m.clone())).collect();
            Ok(Feed::Str(tensor(&shape, &elements)?))
        }
        Dtype::U8 => {
            let [one] = messages else {
                return Err(format!(
                    "input {src} has {} files, but signature input '{name}' is uint8: one                      request's bytes; several requests need a string input",
                    messages.len()
                ));
            };
            let shape = [one.len() as u64];
            if !fits(&shape) {
                return Err(format!(
                    "input {src} has shape {shape:?}, but signature input '{name}' wants shape {}",
                    wanted()
                ));
            }
            Ok(Feed::U8(tensor(&shape, one)?))
        }
        other => Err(format!(
            "input {src} holds serialized requests (.bin), but signature input '{name}' wants              {other}"
        )),
    }
}

/// Checks `batch` against the signature input `name` and makes its tensor.
fn feed(name: &str, info: &TensorInfo, batch: &Batch) -> Result<Feed, String> {
    let want = Dtype::of(info.dtype()).ok_or_else(|| {
        format!(
            "signature input '{name}' has dtype {}, which bpr-host cannot feed",
            info.dtype()
        )
    })?;
    if let Values::Messages(messages) = &batch.values {
        return feed_messages(name, info, batch, messages, want);
    }
    if want == Dtype::Str {
        return Err(format!(
            "signature input '{name}' is string (serialized requests): give a .bin file, a              directory of them, or NAME=FILE.bin more than once, not {}",
            batch.source
        ));
    }
    let shape = info.shape();
    if let Some(rank) = shape.dims() {
        let dims: Vec<Option<i64>> = (0..rank).map(|i| shape[i]).collect();
        let fits = dims.len() == batch.shape.len()
            && dims
                .iter()
                .zip(&batch.shape)
                .all(|(d, &b)| d.is_none_or(|d| d < 0 || d as u64 == b));
        if !fits {
            let want: Vec<String> = dims
                .iter()
                .map(|d| {
                    d.filter(|&d| d >= 0)
                        .map_or("None".into(), |d| d.to_string())
                })
                .collect();
            return Err(format!(
                "input {} has shape {:?}, but signature input '{name}' wants shape [{}]",
                batch.source,
                batch.shape,
                want.join(", ")
            ));
        }
    }
    let s = &batch.shape;
    match &batch.values {
        Values::Npy(data) => {
            let got = data.dtype();
            if got != want {
                return Err(format!(
                    "input {} has dtype {got}, but signature input '{name}' wants {want}",
                    batch.source
                ));
            }
            Ok(match data {
                Typed::F16(v) => Feed::F16(tensor(s, v)?),
                Typed::F32(v) => Feed::F32(tensor(s, v)?),
                Typed::F64(v) => Feed::F64(tensor(s, v)?),
                Typed::I32(v) => Feed::I32(tensor(s, v)?),
                Typed::I64(v) => Feed::I64(tensor(s, v)?),
                Typed::U8(v) => Feed::U8(tensor(s, v)?),
                Typed::Bool(v) => Feed::Bool(tensor(s, v)?),
            })
        }
        Values::Messages(_) => unreachable!("fed above"),
        Values::Json(values) => {
            let src = &batch.source;
            let int = |lo: i64, hi: i64| {
                move |v: &serde_json::Value| v.as_i64().filter(|x| (lo..=hi).contains(x))
            };
            Ok(match want {
                Dtype::F16 => Feed::F16(tensor(
                    s,
                    &batch::json_to(values, src, want, |v| v.as_f64().map(half::f16::from_f64))?,
                )?),
                Dtype::F32 => Feed::F32(tensor(
                    s,
                    &batch::json_to(values, src, want, |v| v.as_f64().map(|x| x as f32))?,
                )?),
                Dtype::F64 => Feed::F64(tensor(
                    s,
                    &batch::json_to(values, src, want, batch::parse_json_f64)?,
                )?),
                Dtype::I32 => Feed::I32(tensor(
                    s,
                    &batch::json_to(values, src, want, |v| {
                        int(i32::MIN.into(), i32::MAX.into())(v).map(|x| x as i32)
                    })?,
                )?),
                Dtype::I64 => Feed::I64(tensor(
                    s,
                    &batch::json_to(values, src, want, batch::parse_json_i64)?,
                )?),
                Dtype::U8 => Feed::U8(tensor(
                    s,
                    &batch::json_to(values, src, want, |v| int(0, 255)(v).map(|x| x as u8))?,
                )?),
                Dtype::Bool => Feed::Bool(tensor(
                    s,
                    &batch::json_to(values, src, want, serde_json::Value::as_bool)?,
                )?),
                Dtype::Str => unreachable!("refused above"),
            })
        }
    }
}

/// Pairs every signature input with exactly one batch.
fn match_inputs(
    wanted: &std::collections::HashMap<String, TensorInfo>,
    files: &[(Option<String>, PathBuf)],
) -> Result<batch::Named, String> {
    let mut names: Vec<&String> = wanted.keys().collect();
    names.sort();
    let listed = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out: BTreeMap<String, Batch> = BTreeMap::new();
    for (given, path) in files {
        for (inner, batch) in batch::read(path)? {
            let name = match (given, inner) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "input {}: NAME=FILE takes a .npy or a JSON nested list, not a JSON object",
                        path.display()
                    ))
                }
                (Some(n), None) => n.clone(),
                (None, Some(n)) => n,
                (None, None) if names.len() == 1 => names[0].clone(),
                (None, None) => {
                    return Err(format!(
                        "the signature has inputs {listed}: name each, --input NAME=FILE"
                    ))
                }
            };
            if !wanted.contains_key(&name) {
                return Err(format!(
                    "the signature has no input '{name}' (its inputs: {listed})"
                ));
            }
            match out.get_mut(&name) {
                // Files of serialized requests for one input: one string batch.
                Some(first) if matches!(first.values, Values::Messages(_)) => {
                    first.extend(batch)?
                }
                Some(_) => return Err(format!("input '{name}' is given twice")),
                None => {
                    out.insert(name.clone(), batch);
                }
            }
        }
    }
    if let Some(missing) = names.iter().find(|n| !out.contains_key(n.as_str())) {
        return Err(format!(
            "no batch for signature input '{missing}' (its inputs: {listed})"
        ));
    }
    Ok(out)
}

/// The signature output that holds the response: the only output, or the
/// only uint8 or string one (string: one response per request).
fn response_output(
    outputs: &std::collections::HashMap<String, TensorInfo>,
) -> Result<(&String, &TensorInfo), String> {
    if outputs.len() == 1 {
        return Ok(outputs.iter().next().expect("one output"));
    }
    let mut bytes: Vec<_> = outputs
        .iter()
        .filter(|(_, i)| matches!(i.dtype(), DataType::UInt8 | DataType::String))
        .collect();
    if bytes.len() == 1 {
        return Ok(bytes.remove(0));
    }
    let mut names: Vec<&String> = outputs.keys().collect();
    names.sort();
    Err(format!(
        "cannot tell which signature output is the response (outputs: {names:?}); expected \
         exactly one uint8 or string output"
    ))
}

/// A SavedModel loaded once, with its inputs built and its response output found.
struct Served {
    dir: PathBuf,
    sig_name: String,
    bundle: SavedModelBundle,
    feeds: Vec<(tensorflow::Operation, i32, Feed)>,
    out_name: String,
    out_op: tensorflow::Operation,
    out_index: i32,
    out_dtype: DataType,
    /// --navi: every signature output (name order), and the number of callers.
    navi_outputs: Vec<(String, tensorflow::Operation, i32, DataType)>,
    callers: usize,
}

/// TensorFlow's "Op type not registered" names the op but not the way out:
/// the library that registers it, given with --ops.
fn missing_ops_hint(message: &str, ops: &[PathBuf]) -> String {
    if !message.contains("Op type not registered") {
        return String::new();
    }
    if ops.is_empty() {
        " (the model uses custom ops: load their library with --ops PATH/libbpr_ops.so, for bpr_ops \
         target/release/libbpr_ops.so after `cargo build --release`, or the file \
         `python -c 'import bpr_ops; print(bpr_ops.library_path())'` prints)"
            .to_string()
    } else {
        let given: Vec<String> = ops.iter().map(|p| p.display().to_string()).collect();
        format!(
            " (the op libraries given with --ops, {}, do not register it: add the library that does \
             with another --ops)",
            given.join(", ")
        )
    }
}

fn load(model: &Path, args: &Args) -> Result<Served, String> {
    if !model.join("saved_model.pb").is_file() && !model.join("saved_model.pbtxt").is_file() {
        return Err(format!(
            "{} is not a SavedModel directory (no saved_model.pb)",
            model.display()
        ));
    }
    let tag = args.tag.as_deref().unwrap_or("serve");
    let mut graph = Graph::new();
    let bundle =
        SavedModelBundle::load(&SessionOptions::new(), [tag], &mut graph, model).map_err(|e| {
            let message = one_line(&e.to_string());
            format!(
                "cannot load SavedModel {}: {message}{}",
                model.display(),
                missing_ops_hint(&message, &args.ops)
            )
        })?;
    let sig_name = args.signature.as_deref().unwrap_or("serving_default");
    let signatures = bundle.meta_graph_def().signatures();
    let signature = signatures.get(sig_name).ok_or_else(|| {
        let mut names: Vec<&String> = signatures.keys().collect();
        names.sort();
        format!(
            "SavedModel {} has no signature '{sig_name}' (its signatures: {names:?})",
            model.display()
        )
    })?;

    let batches = match_inputs(signature.inputs(), &args.inputs)?;
    let mut callers = 0;
    if args.navi {
        callers = navi_callers(signature.inputs(), &batches)?;
    }
    let mut feeds = Vec::new();
    for (name, batch) in &batches {
        let info = &signature.inputs()[name];
        let op = graph
            .operation_by_name_required(&info.name().name)
            .map_err(|e| one_line(&e.to_string()))?;
        feeds.push((op, info.name().index, feed(name, info, batch)?));
    }
    let mut navi_outputs = Vec::new();
    if args.navi {
        let mut names: Vec<&String> = signature.outputs().keys().collect();
        names.sort();
        for name in names {
            let info = &signature.outputs()[name];
            let op = graph
                .operation_by_name_required(&info.name().name)
                .map_err(|e| one_line(&e.to_string()))?;
            navi_outputs.push((name.clone(), op, info.name().index, info.dtype()));
        }
    }
    // Timing a model without a writer (its raw output) is what --repeat
    // compares against, so there any single output will do; navi fetches
    // every output, so none needs to be the response.
    let (out_name, out_info) = if args.navi {
        signature
            .outputs()
            .iter()
            .min_by(|a, b| a.0.cmp(b.0))
            .ok_or_else(|| format!("signature '{sig_name}' has no outputs"))?
    } else if args.repeat.is_some() && signature.outputs().len() == 1 {
        signature.outputs().iter().next().expect("one output")
    } else {
        response_output(signature.outputs())?
    };
    let out_op = graph
        .operation_by_name_required(&out_info.name().name)
        .map_err(|e| one_line(&e.to_string()))?;
    let (out_name, out_index, out_dtype) =
        (out_name.clone(), out_info.name().index, out_info.dtype());
    Ok(Served {
        dir: model.to_path_buf(),
        sig_name: sig_name.to_string(),
        bundle,
        feeds,
        out_name,
        out_op,
        out_index,
        out_dtype,
        navi_outputs,
        callers,
    })
}

/// navi's batch: one model input, fed one serialized request per caller.
fn navi_callers(
    inputs: &HashMap<String, TensorInfo>,
    batches: &batch::Named,
) -> Result<usize, String> {
    let mut names: Vec<&String> = inputs.keys().collect();
    names.sort();
    let [name] = names[..] else {
        return Err(format!(
            "--navi serves a signature with one string input (one serialized request per \
             caller); this one has inputs {names:?}"
        ));
    };
    if inputs[name].dtype() != DataType::String {
        return Err(format!(
            "--navi: signature input '{name}' is {}; navi feeds request bytes as a string tensor, \
             one serialized request per caller",
            Dtype::of(inputs[name].dtype())
                .map_or(inputs[name].dtype().to_string(), |d| d.to_string())
        ));
    }
    match &batches[name].values {
        Values::Messages(m) if !m.is_empty() => Ok(m.len()),
        _ => Err(format!(
            "--navi: give each caller's request as a .bin file (a directory of them, or \
             --input {name}=FILE.bin repeated), not {}",
            batches[name].source
        )),
    }
}

impl Served {
    /// One session run: feeds the batch, fetches the output.
    fn step(&self) -> Result<(SessionRunArgs<'_>, tensorflow::FetchToken), String> {
        let mut step = SessionRunArgs::new();
        for (op, index, tensor) in &self.feeds {
            match tensor {
                Feed::F16(t) => step.add_feed(op, *index, t),
                Feed::F32(t) => step.add_feed(op, *index, t),
                Feed::F64(t) => step.add_feed(op, *index, t),
                Feed::I32(t) => step.add_feed(op, *index, t),
                Feed::I64(t) => step.add_feed(op, *index, t),
                Feed::U8(t) => step.add_feed(op, *index, t),
                Feed::Bool(t) => step.add_feed(op, *index, t),
                Feed::Str(t) => step.add_feed(op, *index, t),
            }
        }
        let token = step.request_fetch(&self.out_op, self.out_index);
        self.bundle
            .session
            .run(&mut step)
            .map_err(|e| format!("running the model failed: {}", one_line(&e.to_string())))?;
        Ok((step, token))
    }

    fn response(&self) -> Result<Response, String> {
        let (mut step, token) = self.step()?;
        let out_name = &self.out_name;
        if self.out_dtype == DataType::String {
            let out: Tensor<Bytes> = step.fetch(token).map_err(|e| {
                format!(
                    "signature output '{out_name}' is not a string tensor: {}",
                    one_line(&e.to_string())
                )
            })?;
            if out.dims().len() != 1 {
                return Err(format!(
                    "signature output '{out_name}' has shape {:?}; one response per request is [R]",
                    out.dims()
                ));
            }
            return Ok(Response::PerRequest(out.to_vec()));
        }
        let out: Tensor<u8> = step.fetch(token).map_err(|e| {
            format!(
                "signature output '{out_name}' is not the uint8 response: {}",
                one_line(&e.to_string())
            )
        })?;
        if out.dims().len() != 2 || out.dims()[0] != 1 {
            return Err(format!(
                "signature output '{out_name}' has shape {:?}; a BatchPredictionResponse is [1, N]",
                out.dims()
            ));
        }
        Ok(Response::One(out))
    }

    /// One run as navi makes it: every output fetched, split by caller.
    fn navi(&self) -> Result<Vec<navi::Split>, String> {
        let mut step = SessionRunArgs::new();
        for (op, index, tensor) in &self.feeds {
            match tensor {
                Feed::Str(t) => step.add_feed(op, *index, t),
                _ => return Err("--navi feeds string inputs only".into()),
            }
        }
        let tokens: Vec<_> = self
            .navi_outputs
            .iter()
            .map(|(name, op, index, dtype)| (name.clone(), step.request_fetch(op, *index), *dtype))
            .collect();
        self.bundle
            .session
            .run(&mut step)
            .map_err(|e| format!("running the model failed: {}", one_line(&e.to_string())))?;
        navi::split(&mut step, &tokens, self.callers)
    }

    /// One timed run: the output is fetched as a server would before sending
    /// it (its first byte is returned so the fetch cannot be skipped).
    fn timed_step(&self) -> Result<u8, String> {
        let (mut step, token) = self.step()?;
        let fetch_err = |e: tensorflow::Status| one_line(&e.to_string());
        Ok(match self.out_dtype {
            DataType::UInt8 => step
                .fetch::<u8>(token)
                .map_err(fetch_err)?
                .first()
                .copied()
                .unwrap_or(0),
            DataType::String => step
                .fetch::<Bytes>(token)
                .map_err(fetch_err)?
                .first()
                .and_then(|b| b.0.first().copied())
                .unwrap_or(0),
            DataType::Float => step
                .fetch::<f32>(token)
                .map_err(fetch_err)?
                .first()
                .map_or(0, |v| v.to_bits() as u8),
            other => {
                return Err(format!(
                    "--repeat fetches uint8 or float outputs; '{}' is {other}",
                    self.out_name
                ))
            }
        })
    }
}

/// --repeat: every model's runs timed round by round in turn, so that they
/// share whatever else the machine does; one JSON line per model.
fn repeat(served: &[Served], runs: usize, rounds: usize) -> Result<(), String> {
    let rounds = rounds.min(runs);
    let per_round = runs / rounds;
    let mut sink = 0u8;
    // Warm-up: the first runs pay for graph optimisation and allocation.
    for s in served {
        for _ in 0..per_round.clamp(3, 100) {
            sink ^= s.timed_step()?;
        }
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); served.len()];
    for round in 0..rounds {
        // Each round starts with the next model, so that none is always
        // the one that runs right after another's.
        for m in (0..served.len()).map(|i| (i + round) % served.len()) {
            let start = std::time::Instant::now();
            for _ in 0..per_round {
                sink ^= served[m].timed_step()?;
            }
            times[m].push(start.elapsed().as_secs_f64() * 1e6 / per_round as f64);
        }
    }
    for (s, t) in served.iter().zip(&times) {
        let mut sorted = t.clone();
        sorted.sort_by(f64::total_cmp);
        let median = if sorted.len() % 2 == 1 {
            sorted[sorted.len() / 2]
        } else {
            (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
        };
        let line = serde_json::json!({
            "model": s.dir.display().to_string(),
            "signature": s.sig_name,
            "output": s.out_name,
            "runs_per_round": per_round,
            "rounds": rounds,
            "round_us": t,
            "median_us": median,
        });
        println!("{line}");
    }
    std::hint::black_box(sink);
    Ok(())
}

fn run(args: Args) -> Result<(), String> {
    let running = tf_version()?;
    for path in &args.ops {
        load_ops(path, &running)?;
    }
    let served = args
        .models
        .iter()
        .map(|m| load(m, &args))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(runs) = args.repeat {
        return repeat(&served, runs, args.rounds.unwrap_or(15));
    }
    let s = &served[0];
    let (sig_name, out_name) = (&s.sig_name, &s.out_name);
    let names = name_of_id(&args.names)?;
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
    match s.response()? {
        Response::One(out) => {
            let bytes: &[u8] = &out;
            if let Some(path) = &args.output {
                std::fs::write(path, bytes)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            if args.print {
                let records = bpr_protocol::decode::decode_response(bytes)
                    .map_err(|e| format!("the response is not a BatchPredictionResponse: {e}"))?;
                println!(
                    "{} records, {} bytes (signature '{sig_name}', output '{out_name}')",
                    records.len(),
                    bytes.len()
                );
                print!("{}", table::table(&records, &names));
            }
        }
        Response::PerRequest(responses) => {
            if let Some(dir) = &args.output {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                for (r, bytes) in responses.iter().enumerate() {
                    let path = dir.join(format!("response-{r:05}.bin"));
                    std::fs::write(&path, &bytes.0)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                }
            }
            if args.print {
                println!(
                    "{} responses, one per request (signature '{sig_name}', output '{out_name}')",
                    responses.len()
                );
                for (r, bytes) in responses.iter().enumerate() {
                    let records = bpr_protocol::decode::decode_response(&bytes.0).map_err(|e| {
                        format!("response {r} is not a BatchPredictionResponse: {e}")
                    })?;
                    println!(
                        "response {r}: {} records, {} bytes",
                        records.len(),
                        bytes.0.len()
                    );
                    print!("{}", table::table(&records, &names));
                }
            }
        }
    }
    Ok(())
}

/// What a model answered: one response (uint8 [1, N]), or one per request
/// (string [R]).
enum Response {
    One(Tensor<u8>),
    PerRequest(Vec<Bytes>),
}

/// Feature id -> name for --names; two names with one id are an error (the
/// table could not say which it is).
fn name_of_id(names: &[String]) -> Result<HashMap<i64, String>, String> {
    let mut out: HashMap<i64, String> = HashMap::new();
    for name in names {
        let id = bpr_protocol::feature_id(name);
        if let Some(other) = out.insert(id, name.clone()) {
            if other != *name {
                return Err(format!(
                    "--names: {other:?} and {name:?} have the same feature id {id}"
                ));
            }
        }
    }
    Ok(out)
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
