"""examples/earlybird (issue 35), small: the-algorithm's Earlybird light ranker on
TensorFlow 2 trains on block files, exports, and serves requests in bpr-host with
the scores of model.predict. `make earlybird` runs it at full size."""

import sys
from pathlib import Path

import numpy as np

import bpr_ops
from test_serving_host import built  # noqa: F401 (fixture)
from thrift_check import decode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples" / "earlybird"))

import earlybird  # noqa: E402
import features  # noqa: E402


def test_earlybird_trains_exports_and_serves(built, tmp_path):  # noqa: F811
    out = earlybird.run(tmp_path, records=6000, epochs=2, batch_size=256, requests=12, release=built,
                        log=lambda *_: None)
    # The model learnt the synthetic ground truth (a logistic model of a few features).
    assert out["loss"][-1] < out["loss"][0]
    assert out["auc"] > 0.65, out["auc"]
    # bpr-host (the C API, no Python) gives model.predict's scores, one per tweet.
    assert len(out["served"]) == len(out["expected"]) > 12
    np.testing.assert_allclose(out["served"], out["expected"], rtol=0, atol=1e-6)
    # The responses decode with thriftpy2 too, the score under the prediction's feature id.
    fid = bpr_ops.feature_id(features.PREDICTION)
    decoded = []
    for path in sorted((tmp_path / "responses").glob("response-*.bin")):
        decoded += [r.continuousFeatures[fid] for r in decode(path.read_bytes()).predictions]
    np.testing.assert_array_equal(np.float32(decoded), out["served"])
