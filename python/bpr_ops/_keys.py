"""Keys as users give them: integer feature ids, feature names, or a mix.

One place for the op wrappers, both Keras layers and the decoder, so they agree
on what a key is and on the messages for bad ones.
"""

from __future__ import annotations

import numbers
from collections.abc import KeysView, Set

NAME_TYPES = (str, bytes, bytearray)


def has_names(keys) -> bool:
    """True when a list, tuple or numpy array of keys holds at least one name.
    Cheap for the usual list of ints: it runs on every eager op call."""
    if isinstance(keys, (list, tuple)):
        return any(isinstance(k, NAME_TYPES) for k in keys)
    kind = getattr(getattr(keys, "dtype", None), "kind", None)
    if kind in ("U", "S"):
        return True
    return kind == "O" and any(isinstance(k, NAME_TYPES) for k in keys.reshape(-1))


def check_ordered(keys, where: str):
    """Refuses a set of keys: keys[j] names column j, and a set's order is
    whatever hashing gives (for names, different in every process), so the
    columns would be written under keys in an order nobody chose."""
    if isinstance(keys, Set) and not isinstance(keys, KeysView):
        raise TypeError(
            f"{where}keys is a {type(keys).__name__}, which has no order, but keys[j] is the key of "
            f"column j: pass a list or tuple in the order of the columns (sorted(keys) if that is "
            f"their order), got {keys!r}"
        )


def _describe(i: int, key) -> str:
    return f"keys[{i}] = {key!r}"


def resolve_keys(keys, where: str) -> tuple[list[int], list]:
    """(ids, given): the int64 feature id of each key, and the keys as given
    (ints as Python ints, names as str or bytes) for configs.

    Names are hashed with twml's feature id (our FeatureId op). Raises
    TypeError for a key that is neither an integer nor a name, and ValueError
    for an int outside int64, a name that is not UTF-8, or two keys with the
    same id (a repeated name, or a name whose id is also given as an int),
    naming both entries. `where` (the layer's name, or "") starts every message.
    """
    where = f"{where}: " if where else ""
    if isinstance(keys, NAME_TYPES) or not hasattr(keys, "__iter__"):
        raise TypeError(
            f"{where}keys must be a list of integer feature ids or feature names, got {keys!r}"
        )
    check_ordered(keys, where)
    keys = list(keys)
    given: list = []
    names: dict[int, object] = {}
    for i, k in enumerate(keys):
        if isinstance(k, NAME_TYPES):
            k = bytes(k) if isinstance(k, bytearray) else k
            names[i] = k
        elif isinstance(k, bool) or not isinstance(k, numbers.Integral):
            raise TypeError(
                f"{where}keys must be integer feature ids or feature names (str or bytes), "
                f"got {k!r} in {keys!r}"
            )
        else:
            k = int(k)
            if not -(2**63) <= k < 2**63:
                raise ValueError(f"{where}key {k} does not fit in int64")
        given.append(k)
    ids = list(given)
    if names:
        from .feature_ids import feature_ids

        positions = list(names)
        try:
            hashed = feature_ids(list(names.values()))
        except Exception as e:
            raise _name_error(e, where, positions, given) from e
        for i, h in zip(positions, hashed):
            ids[i] = h
    seen: dict[int, int] = {}
    for i, key_id in enumerate(ids):
        j = seen.setdefault(key_id, i)
        if j == i:
            continue
        if i not in names and j not in names:
            raise ValueError(f"{where}keys has a duplicate: key {key_id} appears at index {j} and index {i}")
        raise ValueError(
            f"{where}keys has a duplicate: {_describe(j, given[j])} and {_describe(i, given[i])} "
            f"are both feature id {key_id}"
        )
    return ids, given


def _name_error(error: Exception, where: str, positions: list[int], given: list) -> Exception:
    """The op's error for a bad name, renumbered from the names to the keys."""
    import tensorflow as tf

    if not isinstance(error, tf.errors.InvalidArgumentError):
        return error
    text = error.message
    for j, i in enumerate(positions):
        tag = f"feature_names[{j}] "
        if tag in text:
            detail = text[text.index(tag) + len(tag):].split(" [Op:")[0].strip()
            return ValueError(f"{where}keys[{i}] = {given[i]!r} {detail}")
    return ValueError(f"{where}a feature name in keys is not valid: {text}")


def config_keys(given: list) -> list:
    """Keys for get_config (JSON): names as str. Bytes names were checked to be
    UTF-8 when hashed, and a name's id is that of its UTF-8 text, so decoding
    them changes nothing."""
    return [k.decode("utf-8") if isinstance(k, bytes) else k for k in given]


def label_records(records: list[dict], names) -> list[dict]:
    """Replaces each record key that one of `names` hashes to with that name (str)."""
    from .feature_ids import feature_ids

    if isinstance(names, NAME_TYPES):
        raise TypeError(f"names must be a list of feature names, got the single name {names!r}")
    names = list(names)
    labels: dict[int, str] = {}
    for name, key_id in zip(names, feature_ids(names)):
        label = name if isinstance(name, str) else bytes(name).decode("utf-8")
        other = labels.setdefault(key_id, label)
        if other != label:
            raise ValueError(f"names {other!r} and {label!r} have the same feature id {key_id}")
    return [{labels.get(k, k): v for k, v in record.items()} for record in records]
