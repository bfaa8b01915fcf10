//! The response delivered: written to --output (one file, or a directory of
//! one file per request) and/or decoded and printed as tables with --print,
//! feature ids shown as the --names they hash from.

use std::collections::HashMap;

use crate::args::Args;
use crate::model::Response;
use crate::table;

/// Writes and/or prints what the model answered, as --output and --print ask.
pub(crate) fn deliver(
    response: Response,
    args: &Args,
    sig_name: &str,
    out_name: &str,
    names: &HashMap<i64, String>,
) -> Result<(), String> {
    match response {
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
                print!("{}", table::table(&records, names));
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
                    print!("{}", table::table(&records, names));
                }
            }
        }
    }
    Ok(())
}

/// Feature id -> name for --names; two names with one id are an error (the
/// table could not say which it is).
pub(crate) fn name_of_id(names: &[String]) -> Result<HashMap<i64, String>, String> {
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
