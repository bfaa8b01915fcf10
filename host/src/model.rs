//! Running a model: the op libraries loaded first (refusing a bpr_ops library
//! built for another TensorFlow), each SavedModel loaded once with its inputs
//! built and its response output found, and its signature run: once for the
//! response, once as navi runs it, or timed for --repeat.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tensorflow::{
    DataType, Graph, Library, SavedModelBundle, SessionOptions, SessionRunArgs, Tensor, TensorInfo,
};

use crate::args::Args;
use crate::batch::{self, Dtype, Values};
use crate::bytes::Bytes;
use crate::inputs::{feed, match_inputs, Feed};
use crate::{navi, one_line};

/// The marker the op library carries in its file, before the version it was
/// built against (see cpp_shim/include/bpr_ops.h, `bpr_tensorflow_version`).
const MARKER: &[u8] = b"BPR_OPS_BUILT_FOR_TENSORFLOW=";

pub(crate) fn tf_version() -> Result<String, String> {
    tensorflow::version().map_err(|e| format!("TensorFlow's version string is not UTF-8: {e}"))
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

pub(crate) fn load_ops(path: &Path, running: &str) -> Result<(), String> {
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
pub(crate) struct Served {
    dir: PathBuf,
    pub(crate) sig_name: String,
    bundle: SavedModelBundle,
    feeds: Vec<(tensorflow::Operation, i32, Feed)>,
    pub(crate) out_name: String,
    out_op: tensorflow::Operation,
    out_index: i32,
    out_dtype: DataType,
    /// --navi: every signature output (name order), and the number of callers.
    navi_outputs: Vec<(String, tensorflow::Operation, i32, DataType)>,
    pub(crate) callers: usize,
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

pub(crate) fn load(model: &Path, args: &Args) -> Result<Served, String> {
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

    pub(crate) fn response(&self) -> Result<Response, String> {
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
    pub(crate) fn navi(&self) -> Result<Vec<navi::Split>, String> {
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
pub(crate) fn repeat(served: &[Served], runs: usize, rounds: usize) -> Result<(), String> {
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

/// What a model answered: one response (uint8 [1, N]), or one per request
/// (string [R]).
pub(crate) enum Response {
    One(Tensor<u8>),
    PerRequest(Vec<Bytes>),
}
