"""Block scan: one record per element then .batch(B), against the batched
source (BlockFormatDataset(batch_size=B), the BlockFormatBatchDataset op),
interleaved round by round in one process; 200,000 records of 16 floats in 4
plain files, written as bench_block.py writes them. Prints, per B, median
records per second (min..max) of each and the median of the rounds' ratios.

usage: scan_ab.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "python"), str(HERE.parent / "tests" / "python")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import bench_block as bb  # noqa: E402
from bpr_ops import data  # noqa: E402

N = 200_000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _, blocks, _ = bb.write_files(Path(tmp), N, 16, False)
        for b in (64, 512, 4096):
            series = {
                "records then .batch": bb.counter(data.BlockFormatDataset(blocks).batch(b)),
                "batched source": bb.counter(data.BlockFormatDataset(blocks, batch_size=b)),
            }
            for run in series.values():
                bb.timed(run)  # warm
            rates = {k: [] for k in series}
            for _ in range(args.rounds):
                for k, run in series.items():
                    rates[k].append(N / bb.timed(run))
            ratio = statistics.median(
                a / c for a, c in zip(rates["batched source"], rates["records then .batch"]))
            cells = "  ".join(
                f"{k}: {statistics.median(v):,.0f} ({min(v):,.0f}..{max(v):,.0f})" for k, v in rates.items())
            print(f"batch {b}: {cells}; batched / records {ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()
