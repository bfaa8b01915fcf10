"""A minimal Python serving host: loads only TensorFlow and the op library (no
bpr_ops package, no Keras), then the SavedModel, runs one batch from a .npy
file and writes the response bytes. This is what a model server does.

usage: serve_saved_model.py LIBRARY MODEL_DIR INPUT.npy OUTPUT.bin
"""

import sys

import numpy as np
import tensorflow as tf


def main(library, model_dir, inputs, output):
    tf.load_op_library(library)
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    (result,) = serve(tf.constant(np.load(inputs))).values()
    with open(output, "wb") as f:
        f.write(result.numpy().tobytes())


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__.strip())
    main(*sys.argv[1:])
