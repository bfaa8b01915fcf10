"""bpr-decode / `python -m bpr_ops decode FILE`: prints what a model emitted.

FILE holds a serialized BatchPredictionResponse: the raw bytes, or a .npy of
the op's uint8 output tensor. Output: a table (default) or JSON. With --names
or --names-file, keys that a given feature name hashes to are shown as names.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from .decode import DecodeError, decode_batch_prediction_response

PROG = "bpr-decode"


def read_response(path: Path) -> bytes:
    data = path.read_bytes()
    if data.startswith(b"\x93NUMPY"):
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise DecodeError(f"not a readable .npy file: {e}") from None
        if array.dtype != np.uint8:
            raise DecodeError(f".npy holds {array.dtype} {list(array.shape)}, expected the op's uint8 output")
        return array.tobytes()
    return data


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
    return value


def to_json(records: list[dict]) -> str:
    return json.dumps([{str(k): _json_value(v) for k, v in r.items()} for r in records], indent=2)


def _cell(value) -> str:
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            items = ["'" + v.decode("utf-8", "backslashreplace") + "'" for v in value.reshape(-1)]
            body = "[" + ", ".join(items[:4]) + (", ...]" if len(items) > 4 else "]")
            return f"string{list(value.shape)} {body}"
        return f"{value.dtype}{list(value.shape)} " + np.array2string(
            value, precision=6, threshold=8, max_line_width=10**6
        ).replace("\n", "")
    return f"{value:.9g}" if isinstance(value, float) else str(value)


def to_table(records: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in records for k in r))
    rows = [["record"] + [str(k) for k in keys]]
    rows += [[str(i)] + [_cell(r[k]) if k in r else "-" for k in keys] for i, r in enumerate(records)]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    return "\n".join(lines + [f"({len(records)} records)"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    decode = sub.add_parser("decode", help="print the records of a serialized response")
    decode.add_argument("file", type=Path, help="raw response bytes, or a .npy of the op's uint8 output")
    decode.add_argument("--format", choices=("table", "json"), default="table")
    decode.add_argument(
        "--names", action="append", default=[], metavar="A,B,...",
        help="feature names, comma-separated: keys they hash to (twml's feature id) are shown as names",
    )
    decode.add_argument(
        "--names-file", action="append", default=[], type=Path, metavar="FILE",
        help="feature names, one per line (blank lines skipped), as --names",
    )
    # As a console script there is no "decode" word: `bpr-decode FILE`.
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("decode", "-h", "--help"):
        argv.insert(0, "decode")
    args = parser.parse_args(argv)
    try:
        names = read_names(args.names, args.names_file)
    except (OSError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    try:
        records = decode_batch_prediction_response(read_response(args.file))
    except (OSError, DecodeError) as e:
        print(f"{PROG}: error: {args.file}: {e}", file=sys.stderr)
        return 2
    if names:
        try:
            from ._keys import label_records  # loads TensorFlow and the op library

            records = label_records(records, names)
        except Exception as e:  # noqa: BLE001 - one line, whatever stopped the hashing
            print(f"{PROG}: error: feature names: {type(e).__name__}: {getattr(e, 'message', e)}", file=sys.stderr)
            return 2
    print(to_json(records) if args.format == "json" else to_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
