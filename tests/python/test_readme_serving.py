"""The serving commands of the docs (docs/guides/serving.md, "Loading the ops
in a server"; README's "Serving" section before the docs moved there), run as
written (issue 29: `cargo build --release -p bpr-host` then `--ops
target/release/libbpr_ops.so` failed on a fresh checkout: no PYTHON, and -p
bpr-host does not build the op library).

The commands are read from that page, so a page that drifts fails here; only
the user's two files, `exported/` and `batch.npy`, are pointed at this test's
own. The host's table is checked against the model's own scores."""

import os
import re
import subprocess
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import bpr_ops
import thrift_check

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("BPR_OPS_LIBRARY")),
    reason="the serving guide's commands build against .venv's TensorFlow into target/release; a run pointed at "
    "another build (BPR_OPS_LIBRARY, make test-python-oldest-tf) does not test them",
)


GUIDE = ROOT / "docs" / "guides" / "serving.md"
SECTION = "\n## Loading the ops in a server\n"


def serving_section() -> str:
    text = GUIDE.read_text()
    assert SECTION in text, f"{GUIDE} has no section {SECTION.strip()!r}"
    section = text[text.index(SECTION):]
    return section[: section.index("\n## ", 1)]


def readme_serving_commands() -> list[str]:
    """The shell lines of the first ```sh block of the serving guide's section."""
    section = serving_section()
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, f"{GUIDE}'s section {SECTION.strip()!r} has no ```sh block"
    return [line.strip() for line in block[1].splitlines() if line.strip()]


def test_the_readme_names_every_step():
    lines = readme_serving_commands()
    assert lines[0] == "export PYTHON=$PWD/.venv/bin/python", lines
    assert "cargo build --release" in lines and "cargo build --release -p bpr-host" in lines, lines
    assert lines[-1].startswith("target/release/bpr-host --ops target/release/libbpr_ops.so "), lines


def test_the_readme_serving_commands_run_as_written(tmp_path):
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in the checkout (make setup makes it): the guide's commands start from it")
    # The model of the "Use" section of docs/getting-started.md, and a batch of its input.
    features = keras.Input((4,))
    scores = keras.layers.Dense(2, activation="sigmoid")(features)
    model = keras.Model(features, bpr_ops.BatchPredictionWriter(keys=[1001, 1002])(scores))
    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    # batch.npy as the guide says to make it (its float64 default was refused by the host).
    (make_batch,) = re.findall(r"`(np\.save\(\"batch\.npy\", .*?\))`", serving_section().replace("\n", " "))
    np.random.seed(29)
    exec(make_batch.replace('"batch.npy"', repr(str(tmp_path / "batch.npy"))), {"np": np})
    batch = np.load(tmp_path / "batch.npy")
    expected = keras.Model(features, scores)(batch).numpy()

    script = "\n".join(["set -e"] + readme_serving_commands())
    script = script.replace(" exported/ ", f" {tmp_path / 'exported'}/ ").replace(" batch.npy ", f" {tmp_path / 'batch.npy'} ")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "TF_CPP_MIN_LOG_LEVEL")}
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    # The host's table: record, key, kind, dtype, shape, value.
    rows = [line.split() for line in done.stdout.splitlines()[1:] if line.strip()]
    got = {(int(r[0]), int(r[1])): float(r[5]) for r in rows if len(r) == 6 and r[2] == "continuous"}
    # Exactly what the exported model answers in Python (graph mode, the same grappler
    # rewrites as the host's session), read by thriftpy2. Not eager Keras: its sigmoid is not
    # the fused MatMul+Sigmoid of the graph, and on some CPUs the last float32 bit differs.
    serve = tf.saved_model.load(str(tmp_path / "exported")).signatures["serving_default"]
    (result,) = serve(tf.constant(batch)).values()
    response = thrift_check.decode(thrift_check.to_bytes(result))
    want = {(i, key): value for i, record in enumerate(response.predictions)
            for key, value in record.continuousFeatures.items()}
    assert sorted(want) == [(i, key) for i in range(3) for key in (1001, 1002)], want
    assert got == want, done.stdout
    # And that is the model's arithmetic, to float32 round-off.
    np.testing.assert_allclose([want[i, key] for i in range(3) for key in (1001, 1002)],
                               expected.reshape(-1), rtol=1e-6)
