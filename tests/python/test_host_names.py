"""bpr-host --names (issue 29): with --print, a key that one of the names
hashes to is shown as that name, as bpr-decode --names shows it; other keys
stay numbers. The ids are twml's feature ids, computed here with mmh3."""

import keras
import mmh3
import numpy as np

import bpr_ops
from test_serving_host import built, host  # noqa: F401 - the fixture that builds bpr-host


def twml_id(name: str) -> int:
    return int.from_bytes(mmh3.hash_bytes(name.encode("utf-16-le"), 0)[:8], "little", signed=True)


def test_names_label_the_keys_they_hash_to(built, tmp_path):  # noqa: F811
    features = keras.Input((2,))
    model = keras.Model(features, bpr_ops.BatchPredictionWriter(keys=["prediction", 1002])(features))
    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    np.save(tmp_path / "batch.npy", np.float32([[0.25, 0.5]]))
    args = ["--model", tmp_path / "exported", "--input", tmp_path / "batch.npy", "--print"]

    def keys(run):
        assert run.returncode == 0, run.stderr
        rows = [line.split() for line in run.stdout.splitlines()[2:] if line.strip()]
        return [(r[1], r[5]) for r in rows]

    assert keys(host(built, *args)) == [(str(twml_id("prediction")), "0.25"), ("1002", "0.5")]
    named = host(built, *args, "--names", "prediction,p_like", "--names", "other")
    assert keys(named) == [("prediction", "0.25"), ("1002", "0.5")]
