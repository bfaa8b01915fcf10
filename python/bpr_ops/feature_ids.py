"""Feature ids: the int64 twml's `FeatureId` op gives a feature name, the key a
consumer looks a prediction up with (`Feature.Continuous("prediction")` on the
JVM). Computed in Python (`_murmur.py`), with no TensorFlow: the decoder and
`bpr-decode --names` work where TensorFlow is not installed, and no eager
kernel cache stands between a name and its id (issue 20: TensorFlow 2.21's
cache keyed `FeatureId` kernels by a summary of the attr, which keeps only the
ends of a long name, and gave a later name an earlier name's id). The same hash
as the op's (Rust, `bpr_protocol::feature_id`); the tests check both against
`mmh3`.

    bpr_ops.feature_id("prediction")          # -5621645068071228725
    bpr_ops.feature_ids(["prediction", "p_like"])
"""

from __future__ import annotations

import sys
import threading

from ._murmur import feature_id_of_text, not_utf8_message

# Ids already computed, so layers and op wrappers given names do not hash them
# again on every call. Keyed by the exact bytes (a dict compares whole keys).
# Bounded: a caller hashing millions of distinct names must not grow the
# process without limit.
_CACHE: dict[bytes, int] = {}
_CACHE_LIMIT = 1 << 16
_cache_lock = threading.Lock()


def _name_bytes(name, where: str) -> bytes:
    if isinstance(name, str):
        # A lone surrogate ("\ud800") has no UTF-8 form; "surrogatepass" gives
        # its 3-byte encoding, which the UTF-8 check below rejects with the
        # byte offset like any other invalid name.
        return name.encode("utf-8", "surrogatepass")
    if isinstance(name, (bytes, bytearray)):
        return bytes(name)
    raise TypeError(f"{where} must be a feature name (str or bytes), got {type(name).__name__} {name!r}")


def _invalid_name(message: str) -> Exception:
    # The op's error type where TensorFlow is loaded (code that catches the
    # op's error catches ours), a ValueError where it is not.
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "errors"):
        return tf.errors.InvalidArgumentError(None, None, message)
    return ValueError(message)


def _hash_all(names: list[bytes]) -> list[int]:
    ids = []
    for i, name in enumerate(names):
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _invalid_name(not_utf8_message(f"feature_names[{i}]", name, e)) from None
        ids.append(feature_id_of_text(text))
    return ids


def feature_ids(names) -> list[int]:
    """The feature id of each name (str, or bytes holding UTF-8), in order.

    Raises TypeError for an entry that is neither str nor bytes, and, for one
    that is not valid UTF-8, the op's error (`tf.errors.InvalidArgumentError`
    when TensorFlow is loaded, else ValueError) naming it as `feature_names[i]`
    with the byte offset, in the op's words.
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
    computed = dict(zip(encoded, _hash_all(encoded)))
    with _cache_lock:
        if len(_CACHE) + len(computed) > _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE.update(computed)
    return [computed[n] for n in encoded]


def feature_id(name) -> int:
    """The feature id of one name (str, or bytes holding UTF-8)."""
    return feature_ids([_name_bytes(name, "name")])[0]
