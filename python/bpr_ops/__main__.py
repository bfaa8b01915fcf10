"""bpr-decode / `python -m bpr_ops decode FILE`: prints the DataRecords of
prediction responses, requests and block files, as a table or JSON.

FILE ("-": standard input) is one of:
  - serialized BatchPredictionResponses: the raw bytes of one, a .npy of the
    op's uint8 output tensor (or of model.predict's, one response per row),
    or, for model.predict's RaggedTensor (batches of different sizes), a .npz
    of `np.savez(FILE, flat_values=out.flat_values, row_splits=out.row_splits)`;
  - an Elephant-Bird block file of DataRecords (training data, plain or gzip),
    whose records are shown the same way;
  - with --request, the raw bytes of one BatchPredictionRequest (what a model
    is served): its records, and its commonFeatures as the row "common" (JSON:
    {"commonFeatures": ..., "records": [...]}). A request has a response's
    framing, so it must be said; one with commonFeatures is recognised by them
    and read as a request even without --request (a note says so);
  - with --base64, base64 text (web-safe or standard, padding optional,
    whitespace-separated): each text one response (or, with --request, the
    one request), as navi's `navi` signature and servers that send JSON give.
Every DataRecord field is shown; a key that appears under two fields is
labelled field:key. With --names or --names-file, keys that a given feature
name hashes to are shown as names. Output cut short (`| head`) ends quietly
with status 141, as a process killed by SIGPIPE.
"""
from __future__ import annotations

import argparse
import binascii
import io
import json
import math
import os
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .decode import DecodeError, SparseTensorValue, decode_request, decode_responses, label_keys

PROG = "bpr-decode"


# What to save of model.predict's RaggedTensor (np.save can only pickle it).
SAVE_RAGGED = "np.savez(FILE.npz, flat_values=out.flat_values, row_splits=out.row_splits)"


class _Ragged(NamedTuple):
    """predict's RaggedTensor [M, None] as saved in a .npz: the responses'
    bytes one after the other, and where each starts."""

    flat_values: np.ndarray
    row_splits: np.ndarray
    ragged_rank: int = 1

    @property
    def shape(self):
        return (len(self.row_splits) - 1, None)


def _read_npz(source) -> _Ragged:
    try:
        with np.load(source, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as e:
        raise DecodeError(f"not a readable .npz file: {e}") from None
    if sorted(arrays) != ["flat_values", "row_splits"]:
        raise DecodeError(
            f".npz holds {sorted(arrays)}; expected flat_values and row_splits, the arrays of "
            f"model.predict's RaggedTensor `out` as saved by {SAVE_RAGGED}"
        )
    flat, splits = arrays["flat_values"], arrays["row_splits"]
    if flat.ndim != 1 or flat.dtype.kind not in "iu" or splits.ndim != 1 or splits.dtype.kind not in "iu":
        raise DecodeError(
            f".npz: expected flat_values as integers [N] and row_splits as integers [M + 1], got "
            f"{flat.dtype} {list(flat.shape)} and {splits.dtype} {list(splits.shape)}"
        )
    # Every byte in exactly one response: nothing skipped, nothing read twice.
    if len(splits) == 0 or splits[0] != 0 or splits[-1] != len(flat) or np.any(np.diff(splits) < 0):
        raise DecodeError(
            f".npz: row_splits must start at 0, never decrease and end at the length of flat_values "
            f"({len(flat)}), got {splits.tolist()[:8]}{' ...' if len(splits) > 8 else ''}"
        )
    return _Ragged(flat, splits)


def read_response(path: Path, data: bytes | None = None):
    """The file's bytes, the array of a .npy file (one response per row), or
    the RaggedTensor of a .npz file. `data`: the file's bytes, read already."""
    data = path.read_bytes() if data is None else data
    if data.startswith(b"PK\x03\x04") and path.suffix == ".npz":
        return _read_npz(io.BytesIO(data))
    if data.startswith(b"\x93NUMPY"):
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as e:
            if "allow_pickle" in str(e):
                raise DecodeError(
                    "this .npy holds pickled Python objects, which bpr-decode does not load: np.save "
                    "pickles a RaggedTensor, what model.predict returns when its batches differ in size; "
                    f"save {SAVE_RAGGED} instead"
                ) from None
            raise DecodeError(f"not a readable .npy file: {e}") from None
        if array.dtype.kind not in "iu":
            raise DecodeError(
                f".npy holds {array.dtype} {list(array.shape)}, expected the op's uint8 output "
                "(or the integer bytes model.predict returns)"
            )
        return array
    return data


class Decoded(NamedTuple):
    records: list
    common: dict | None  # a request's commonFeatures
    skipped: dict
    request: bool  # shown as a request (its commonFeatures row, JSON {"commonFeatures", "records"})
    note: str | None = None


def _request_with_common(data: bytes):
    """decode_request's result when `data` is a BatchPredictionRequest with
    commonFeatures, else None. A response has no field 2, so a message that
    has one holding a DataRecord is a request, and reading it as a response
    would drop its commonFeatures."""
    try:
        records, common, skipped = decode_request(data)
    except DecodeError:
        return None
    return (records, common, skipped) if common is not None else None


def read_records(path: Path, data: bytes | None = None) -> Decoded:
    """The records of a response file, a block file, or a request recognised
    by its commonFeatures."""
    from ._blockfile import block_records, looks_like_block_file
    from .decode import _Reader, _record

    data = path.read_bytes() if data is None else data
    if looks_like_block_file(data):
        records, skipped = [], {}
        for i, blob in enumerate(block_records(data)):
            r = _Reader(blob)
            records.append(_record(r, f"record {i}"))
            if r.pos != len(blob):
                raise DecodeError(f"record {i}: {len(blob) - r.pos} bytes after the DataRecord")
            for key, n in r.skipped.items():
                skipped[key] = skipped.get(key, 0) + n
        return Decoded(records, None, skipped, False)
    response = read_response(path, data)
    if isinstance(response, bytes):
        found = _request_with_common(response)
        if found is not None:
            return Decoded(*found, True, note=REQUEST_NOTE)
    records, skipped = decode_responses(response, by_field=True)
    return Decoded(records, None, skipped, False)


REQUEST_NOTE = (
    "read as a BatchPredictionRequest: it has commonFeatures (field 2), which no BatchPredictionResponse "
    "has (--request says so and silences this note)"
)


_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def base64_messages(text: bytes) -> list[bytes]:
    """The messages of base64 text: whitespace-separated, web-safe (-_) or
    standard (+/) alphabet, padding optional."""
    out = []
    for i, token in enumerate(text.split()):
        try:
            word = token.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError(f"base64 text {i}: not ASCII (is this raw bytes? drop --base64)") from None
        word = word.replace("-", "+").replace("_", "/").rstrip("=")
        if len(word) % 4 == 1:
            raise DecodeError(f"base64 text {i}: {len(word)} characters cannot be base64 (a truncated text?)")
        bad = next((at for at, c in enumerate(word) if c not in _BASE64_ALPHABET), None)
        if bad is not None:
            raise DecodeError(f"base64 text {i}: {word[bad]!r} at character {bad} is not base64")
        try:
            out.append(binascii.a2b_base64(word + "=" * (-len(word) % 4), strict_mode=True))
        except binascii.Error as e:
            raise DecodeError(f"base64 text {i} is not base64: {e}") from None
    if not out:
        raise DecodeError("no base64 text")
    return out


def decode_base64(text: bytes, request: bool) -> Decoded:
    messages = base64_messages(text)
    if request:
        if len(messages) != 1:
            raise DecodeError(f"--request reads one request; the base64 text holds {len(messages)}")
        return Decoded(*decode_request(messages[0]), True)
    if len(messages) == 1:
        found = _request_with_common(messages[0])
        if found is not None:
            return Decoded(*found, True, note=REQUEST_NOTE)
    for i, m in enumerate(messages):
        if _request_with_common(m) is not None:
            raise DecodeError(
                f"base64 text {i} is a BatchPredictionRequest with commonFeatures, not a response; "
                "decode it alone with --request"
            )
    records, skipped = decode_responses(messages, by_field=True)
    return Decoded(records, None, skipped, False)


def read_names(lists: list[str], files: list[Path]) -> list[str]:
    """Names from --names (comma-separated) and --names-file (one per line)."""
    names = [n for arg in lists for n in arg.split(",") if n]
    for path in files:
        for number, line in enumerate(path.read_bytes().split(b"\n"), 1):
            line = line.removesuffix(b"\r")
            if not line.strip():
                continue
            try:
                names.append(line.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{number}: the name is not UTF-8 ({e.reason} at byte {e.start})") from None
    return names


def _text(b: bytes) -> str:
    """Bytes for a terminal: UTF-8 text, with invalid bytes and control characters escaped."""
    text = b.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() or c == "\\" else repr(c)[1:-1] for c in text)


def _json_value(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # JSON has no NaN or infinity
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"hex": value.hex()}
    if isinstance(value, np.ndarray):
        flat = [_json_value(v.item() if hasattr(v, "item") else v) for v in value.reshape(-1)]
        return {"dtype": str(value.dtype), "shape": list(value.shape), "values": flat}
    if isinstance(value, SparseTensorValue):
        return {
            "indices": _json_value(value.indices),
            "values": _json_value(value.values),
            "dense_shape": list(value.dense_shape),
        }
    if isinstance(value, (set, frozenset)):
        return [_json_value(v) for v in sorted(value)]
    if isinstance(value, dict):  # sparseContinuousFeatures: {name: value}
        return {k.decode("utf-8", "backslashreplace") if isinstance(k, bytes) else str(k): _json_value(v)
                for k, v in value.items()}
    return value


def _columns(records: list[dict]) -> list[tuple[str, int, str]]:
    """(field, key, label) of every feature, in order of appearance. The label
    is the key, or field:key when the key appears under two fields."""
    pairs = list(dict.fromkeys((f, k) for r in records for f, entries in r.items() for k in entries))
    fields_of: dict = {}
    for f, k in pairs:
        fields_of.setdefault(k, set()).add(f)
    return [(f, k, _key_text(k) if len(fields_of[k]) == 1 else f"{f}:{_key_text(k)}") for f, k in pairs]


def _key_text(key) -> str:
    """An int key as its number; a name (str) as itself, but in double quotes
    when it would read as a number (the name "1002" next to the key 1002), so
    the two never print alike, in the table or as JSON object keys (issue 20)."""
    if isinstance(key, str):
        try:
            int(key)
        except ValueError:
            return key
        return f'"{key}"'
    return str(key)


def to_json(records: list[dict], common: dict | None = None, request: bool = False) -> str:
    """Rows as a JSON list; for a request, {"commonFeatures": row or null, "records": rows}."""
    columns = _columns(records + ([common] if common is not None else []))
    def row(r):
        return {label: _json_value(r[f][k]) for f, k, label in columns if k in r.get(f, {})}
    rows = [row(r) for r in records]
    if request:
        return json.dumps({"commonFeatures": None if common is None else row(common), "records": rows}, indent=2)
    return json.dumps(rows, indent=2)


def _cell(value) -> str:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            items = ["'" + _text(v) + "'" for v in value.reshape(-1)]
            body = "[" + ", ".join(items[:4]) + (", ...]" if len(items) > 4 else "]")
            return f"string{list(value.shape)} {body}"
        return f"{value.dtype}{list(value.shape)} " + np.array2string(
            value, precision=6, threshold=8, max_line_width=10**6
        ).replace("\n", "")
    if isinstance(value, SparseTensorValue):
        return f"sparse{list(value.dense_shape)} {_cell(value.values)} at {_cell(value.indices)}"
    if isinstance(value, bytes):
        return "'" + _text(value) + "'"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(_cell(v) for v in sorted(value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_cell(k)}: {_cell(v)}" for k, v in value.items()) + "}"
    return f"{value:.9g}" if isinstance(value, float) else str(value)


def to_table(records: list[dict], common: dict | None = None) -> str:
    """One row per record (and a first row "common" for a request's commonFeatures)."""
    labelled = ([("common", common)] if common is not None else []) + [(str(i), r) for i, r in enumerate(records)]
    columns = _columns([r for _, r in labelled])
    rows = [["record"] + [label for _, _, label in columns]]
    rows += [
        [name] + [_cell(r[f][k]) if k in r.get(f, {}) else "-" for f, k, _ in columns]
        for name, r in labelled
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    return "\n".join(lines + [f"({len(records)} records)"])


def skipped_note(skipped: dict) -> str:
    items = [f"{owner} field {fid} ({ttype}) x{n}" for (owner, fid, ttype), n in skipped.items()]
    return "skipped fields this schema does not know: " + ", ".join(items)


def _parser() -> argparse.ArgumentParser:
    doc = __doc__.split("\n", 2)
    parser = argparse.ArgumentParser(prog=PROG, description=doc[0] + " " + doc[1])
    sub = parser.add_subparsers(dest="command", required=True)
    decode = sub.add_parser(
        "decode", prog=PROG, help="print the records of responses, a request or a block file",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    decode.add_argument("file", type=Path, help="responses (raw bytes, a .npy of the op's output, a .npz of "
                        "predict's RaggedTensor), a block file, a request (--request) or base64 text "
                        "(--base64); - reads standard input")
    decode.add_argument("--format", choices=("table", "json"), default="table")
    decode.add_argument("--request", action="store_true",
                        help="FILE is one serialized BatchPredictionRequest (raw bytes), not a response")
    decode.add_argument("--base64", action="store_true",
                        help="FILE is base64 text (web-safe or standard, padding optional), one message per "
                        "whitespace-separated text: what navi's `navi` signature returns")
    decode.add_argument(
        "--names", action="append", default=[], metavar="A,B,...",
        help="feature names, comma-separated: keys they hash to (twml's feature id) are shown as names",
    )
    decode.add_argument(
        "--names-file", action="append", default=[], type=Path, metavar="FILE",
        help="feature names, one per line (blank lines skipped), as --names",
    )
    return parser


def _decode(args) -> Decoded:
    data = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    if args.base64:
        return decode_base64(data, args.request)
    if args.request:
        return Decoded(*decode_request(data), True)
    return read_records(args.file, data)


def _print_all(decoded: Decoded, names: list[str], fmt: str) -> int:
    records, common = decoded.records, decoded.common
    if names:
        try:
            labelled = label_keys(records + ([common] if common is not None else []), names, by_field=True)
        except Exception as e:  # noqa: BLE001 - one line, whatever stopped the hashing
            print(f"{PROG}: error: feature names: {type(e).__name__}: {getattr(e, 'message', e)}", file=sys.stderr)
            return 2
        records, common = labelled[: len(records)], (labelled[-1] if common is not None else None)
    if decoded.note:
        print(f"{PROG}: note: {decoded.note}", file=sys.stderr)
    if fmt == "json":
        print(to_json(records, common, request=decoded.request))
    else:
        print(to_table(records, common))
    if decoded.skipped:
        # stderr: the JSON on stdout stays JSON.
        print(f"{PROG}: note: {skipped_note(decoded.skipped)}", file=sys.stderr)
    sys.stdout.flush()
    return 0


def main(argv=None) -> int:
    # As a console script there is no "decode" word: `bpr-decode FILE`, and
    # `bpr-decode --help` is the decode command's help (the one there is).
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "decode":
        argv.insert(0, "decode")
    args = _parser().parse_args(argv)
    try:
        names = read_names(args.names, args.names_file)
    except (OSError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    try:
        decoded = _decode(args)
    except (OSError, DecodeError, TypeError) as e:
        print(f"{PROG}: error: {args.file}: {e}", file=sys.stderr)
        return 2
    try:
        return _print_all(decoded, names, args.format)
    except BrokenPipeError:
        # The reader left (`| head`): stop quietly, as Unix tools do (killed
        # by SIGPIPE: status 128 + 13). Python would flush stdout again at
        # exit and print a second error, so stdout goes to /dev/null first.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
