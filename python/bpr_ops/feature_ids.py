"""Feature ids: the int64 twml's `FeatureId` op gives a feature name, the key a
consumer looks a prediction up with (`Feature.Continuous("prediction")` on the
JVM). Computed by our `FeatureId` op, so Python, graphs and serving share one
implementation of the hash (Rust, in the encoder crate).

    bpr_ops.feature_id("prediction")          # -5621645068071228725
    bpr_ops.feature_ids(["prediction", "p_like"])
"""

from __future__ import annotations

import threading

from ._loader import load_library

# Ids already computed, so layers and op wrappers given names do not run the op
# on every call. Bounded: a caller hashing millions of distinct names must not
# grow the process without limit.
_CACHE: dict[bytes, int] = {}
_CACHE_LIMIT = 1 << 16
_cache_lock = threading.Lock()


def _name_bytes(name, where: str) -> bytes:
    if isinstance(name, str):
        # A lone surrogate ("\ud800") has no UTF-8 form; "surrogatepass" hands
        # its 3-byte encoding to the op, which rejects it with the byte offset
        # like any other invalid name: one place decides what a valid name is.
        return name.encode("utf-8", "surrogatepass")
    if isinstance(name, (bytes, bytearray)):
        return bytes(name)
    raise TypeError(f"{where} must be a feature name (str or bytes), got {type(name).__name__} {name!r}")


def _run_op(names: list[bytes]) -> list[int]:
    import tensorflow as tf

    lib = load_library()
    # Out of any graph being built (a tf.function, a Keras model loading inside
    # one): the ids are Python ints now, not tensors of that graph.
    with tf.init_scope():
        if tf.executing_eagerly():
            return lib.feature_id(feature_names=names).numpy().tolist()
    # TF1-style graph mode, where init_scope is not eager: a private session.
    with tf.Graph().as_default():
        ids = lib.feature_id(feature_names=names)
        with tf.compat.v1.Session() as session:
            return session.run(ids).tolist()


def feature_ids(names) -> list[int]:
    """The feature id of each name (str, or bytes holding UTF-8), in order.

    Raises TypeError for an entry that is neither str nor bytes, and
    `tf.errors.InvalidArgumentError` (from the op) for one that is not valid
    UTF-8, naming it as `feature_names[i]` with the byte offset.
    """
    if isinstance(names, (str, bytes, bytearray)):
        raise TypeError(f"names must be a list of feature names, got the single name {names!r}: use feature_id()")
    encoded = [_name_bytes(n, f"names[{i}]") for i, n in enumerate(names)]
    try:
        return [_CACHE[n] for n in encoded]
    except KeyError:
        pass
    # The whole list, repeats included, so an error's feature_names[i] is the
    # caller's entry i.
    computed = dict(zip(encoded, _run_op(encoded)))
    with _cache_lock:
        if len(_CACHE) + len(computed) > _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE.update(computed)
    return [computed[n] for n in encoded]


def feature_id(name) -> int:
    """The feature id of one name (str, or bytes holding UTF-8)."""
    return feature_ids([_name_bytes(name, "name")])[0]
