"""Calibrators: fit the HashingDiscretizer's, PercentileDiscretizer's and
MDL's bins and the Isotonic layer's curve from data, as twml's
`contrib/calibrators` do, and return the layer. twml's MDLCalibrator is its
PercentileDiscretizerCalibrator (the same weighted-percentile bins) with an
MDL layer at the end, and so is ours: no minimum-description-length search
is involved, whatever the name says.

Streaming: batches are accumulated one at a time (`accumulate*`, or `fit`
over a tf.data dataset). Memory is bounded by `max_values_per_feature`: up to
that many values a feature is kept whole and its bins are twml's exactly
(twml's algorithm: weighted percentiles found by twml's interpolation search);
past it the feature keeps a weighted random sample of that size (A-ES
reservoir, seeded) and its bins are percentiles of the sample, which differ
from twml's (twml kept every value in memory). None keeps everything, as
twml did.
"""

from __future__ import annotations

import numpy as np

_DEFAULT_MAX_VALUES = 1_000_000


def _numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def _nearest_index(xs: np.ndarray, p) -> int:
    """twml's interpolation search (interpolate.h, NEAREST, lowest=0) of `p`
    in the non-decreasing float32 `xs`: the index it stops at."""
    n = xs.size
    left, right = 0, n - 1
    if p <= xs[0]:
        return 0
    if p >= xs[right]:
        return right
    while left < right:
        middle = (left + right) // 2
        if middle < n - 1 and xs[middle] <= p <= xs[middle + 1]:
            return middle
        if p > xs[middle]:
            left = middle
        else:
            right = middle
    return left


def percentile_bins(values, weights, n_bin: int) -> np.ndarray:
    """twml's PercentileDiscretizerFeature.calibrate for one feature: the
    n_bin + 1 boundaries (float32) of its weighted values."""
    values = np.asarray(values, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    bins = np.empty(n_bin + 1, dtype=np.float32)
    order = np.argsort(values)
    values = values.take(order)
    cum = np.cumsum(weights.take(order), dtype=np.float32)
    cum -= cum[0]
    if cum[-1] > 0:
        cum /= cum[-1]
    if values.size < bins.size:
        bins.fill(np.inf)
        bins[0] = -np.inf
        bins[1:values.size + 1] = values
        return bins
    percentiles = np.linspace(0, 1, num=n_bin + 1, dtype=np.float32)
    # twml writes the search's index (a float32 of ys = arange) into the
    # int64 argsort buffer, then pins both ends.
    index = np.array([int(np.float32(_nearest_index(cum, p))) for p in percentiles], dtype=np.int64)
    index[0] = 0
    index[-1] = values.size - 1
    return values.take(index)


class _Feature:
    """One feature's values and weights, kept whole up to `cap`, then a
    weighted reservoir of `cap` (keys u ** (1 / w), the largest kept)."""

    def __init__(self, cap, rng):
        self.cap, self.rng = cap, rng
        self.values, self.weights, self.keys = [], [], []
        self.count = 0
        self.sampled = False

    def add(self, values, weights):
        self.values.append(values)
        self.weights.append(weights)
        self.count += len(values)
        if self.cap is not None and self.count > 2 * self.cap:
            self._shrink()

    def _shrink(self):
        values, weights = np.concatenate(self.values), np.concatenate(self.weights)
        keys = self.rng.random(len(values)) ** (1.0 / np.maximum(weights, 1e-30))
        keep = np.argpartition(-keys, self.cap - 1)[: self.cap]
        keep.sort()  # first-seen order, so argsort ties stay in stream order
        # A sample drawn in proportion to weight stands for the weighted values:
        # each kept value counts once.
        self.values, self.weights = [values[keep]], [np.ones(keep.size, np.float32)]
        self.count = keep.size
        self.sampled = True

    def arrays(self):
        if self.cap is not None and self.count > self.cap:
            self._shrink()
        return np.concatenate(self.values), np.concatenate(self.weights)


class HashingDiscretizerCalibrator:
    """twml's HashingDiscretizerCalibrator: accumulates (feature id, value,
    weight) triples, calibrates n_bin + 1 percentile boundaries per feature
    (so n_bin + 2 bins), and returns a `bpr_ops.HashingDiscretizer` layer.

    Args:
      n_bin: as twml's (the layer gets n_bin + 1 boundaries per feature).
      out_bits: the layer's output bits; 2 ** out_bits must exceed the
        features x (n_bin + 1) new ids (twml's check).
      max_values_per_feature: memory bound per feature (module docstring);
        None keeps every value as twml did.
      allow_empty_calibration: as twml's (else calibrating nothing is an error).
      seed: the reservoir's seed.
    """

    _max_out_bits = 62

    def __init__(self, n_bin, out_bits, max_values_per_feature=_DEFAULT_MAX_VALUES,
                 allow_empty_calibration=False, seed=0):
        if not isinstance(n_bin, int) or n_bin < 1:
            raise ValueError(f"{type(self).__name__}: n_bin must be an int >= 1, got {n_bin!r}")
        if not isinstance(out_bits, int) or not 1 <= out_bits <= self._max_out_bits:
            raise ValueError(f"{type(self).__name__}: out_bits must be an int in [1, {self._max_out_bits}], "
                             f"got {out_bits!r}")
        if max_values_per_feature is not None and (not isinstance(max_values_per_feature, int)
                                                   or max_values_per_feature < n_bin + 1):
            raise ValueError(f"{type(self).__name__}: max_values_per_feature must be None or an int "
                             f">= n_bin + 1 = {n_bin + 1}, got {max_values_per_feature!r}")
        self.n_bin, self.out_bits = n_bin, out_bits
        self.max_values_per_feature = max_values_per_feature
        self.allow_empty_calibration = allow_empty_calibration
        self._rng = np.random.default_rng(seed)
        self._features: dict[int, _Feature] = {}
        self.feature_ids = None
        self.bin_vals = None

    @property
    def sampled_features(self):
        """Feature ids whose bins came from a sample (over the memory bound)."""
        return [f for f, feat in self._features.items() if feat.sampled]

    def accumulate(self, feature_keys, feature_vals, weights=None):
        """One batch: feature ids int [N], values float [N], weights [N] (default 1)."""
        keys = _numpy(feature_keys)
        vals = _numpy(feature_vals)
        if keys.ndim != 1 or vals.ndim != 1 or keys.size != vals.size:
            raise ValueError(f"{type(self).__name__}.accumulate: feature_keys and feature_vals must be "
                             f"vectors of one length, got shapes {keys.shape} and {vals.shape}")
        if weights is None:
            weights = np.ones(keys.size, np.float32)
        weights = np.squeeze(_numpy(weights)).astype(np.float32).reshape(-1)
        if weights.size != keys.size:
            raise ValueError(f"{type(self).__name__}.accumulate: weights must have one weight per value "
                             f"({keys.size}), got shape {weights.shape}")
        if not np.all(np.isfinite(weights)) or (weights < 0).any():
            raise ValueError(f"{type(self).__name__}.accumulate: weights must be finite and >= 0 "
                             "(twml's percentile search never ends on a NaN weight)")
        vals = vals.astype(np.float32)
        # twml's order: a batch's new features in ascending id order.
        for fid in np.unique(keys):
            at = keys == fid
            feat = self._features.get(int(fid))
            if feat is None:
                feat = self._features[int(fid)] = _Feature(self.max_values_per_feature, self._rng)
            feat.add(vals[at], weights[at])

    def accumulate_sparse(self, sparse, row_weights=None):
        """A tf.SparseTensor [batch, input_size] (feature ids in its columns,
        as the hashed reader gives them) and optional per-row weights [batch]."""
        indices = _numpy(sparse.indices)
        weights = None if row_weights is None else np.take(_numpy(row_weights).reshape(-1), indices[:, 0])
        self.accumulate(indices[:, 1], _numpy(sparse.values), weights)

    def fit(self, dataset, max_batches=None):
        """Accumulates a dataset of tf.SparseTensor batches, (sparse,
        row_weights) pairs, or dicts with "keys"/"values" (and "weights", one
        per value), then calibrates. Returns self."""
        for i, element in enumerate(dataset):
            if max_batches is not None and i >= max_batches:
                break
            if isinstance(element, dict):
                self.accumulate(element["keys"], element["values"], element.get("weights"))
            elif isinstance(element, (tuple, list)):
                self.accumulate_sparse(*element)
            else:
                self.accumulate_sparse(element)
        self.calibrate()
        return self

    def calibrate(self):
        if not self._features and not self.allow_empty_calibration:
            raise RuntimeError(f"{type(self).__name__}: no feature was accumulated (empty calibration "
                               "data); pass allow_empty_calibration=True to allow a pass-through layer")
        ids, rows = [], []
        for fid, feat in self._features.items():
            values, weights = feat.arrays()
            ids.append(fid)
            rows.append(percentile_bins(values, weights, self.n_bin))
        self.feature_ids = np.array(ids, dtype=np.int64)
        self.bin_vals = (np.stack(rows) if rows else np.zeros((0, self.n_bin + 1), np.float32))
        return self

    def to_layer(self, name=None, keras_module=None):
        """A HashingDiscretizer layer (Keras 3; tf_keras with keras_module=tf_keras)."""
        if self.bin_vals is None:
            raise RuntimeError(f"{type(self).__name__}: call calibrate() (or fit) before to_layer()")
        new_ids = len(self.feature_ids) * (self.n_bin + 1)
        if 2 ** self.out_bits <= new_ids:
            raise ValueError(f"{type(self).__name__}: the discretizer makes up to {new_ids} new ids but "
                             f"out_bits={self.out_bits} allows {2 ** self.out_bits}; raise out_bits")
        layers = _layers(keras_module)
        return layers["HashingDiscretizer"](feature_ids=self.feature_ids, bin_vals=self.bin_vals.reshape(-1),
                                            n_bin=self.n_bin + 1, out_bits=self.out_bits, name=name)


class PercentileDiscretizerCalibrator(HashingDiscretizerCalibrator):
    """twml's PercentileDiscretizerCalibrator: accumulates (feature id,
    value, weight) triples as HashingDiscretizerCalibrator (the same streaming
    and memory bound), calibrates n_bin + 1 weighted-percentile boundaries per
    feature with twml's algorithm (`percentile_bins`), and returns a
    `bpr_ops.PercentileDiscretizer` layer with twml's layout: feature i (in
    first-seen order, ascending within a batch) has index i, bins
    bin_values[i * (n_bin + 1):(i + 1) * (n_bin + 1)] and new ids
    1 + i * (n_bin + 1) ... (i + 1) * (n_bin + 1) (bin_ids start at 1, as twml's).

    Args:
      n_bin: as twml's (each feature gets n_bin + 1 boundaries and ids).
      out_bits: the layer's output bits, 1 to 30 (twml's op computes
        1 << out_bits in a 32-bit int); 2 ** out_bits must exceed the
        features x (n_bin + 1) new ids (checked by to_layer, as twml's).
      max_values_per_feature, allow_empty_calibration, seed: as
        HashingDiscretizerCalibrator's.
    """

    _max_out_bits = 30
    _layer = "PercentileDiscretizer"

    @property
    def hash_keys(self):
        """The calibrated feature ids, in index order (twml's hash map keys)."""
        return self.feature_ids

    @property
    def bin_ids(self):
        """[features, n_bin + 1] new ids, 1 to features x (n_bin + 1) (twml's)."""
        if self.bin_vals is None:
            return None
        n = len(self.feature_ids)
        return np.arange(1, n * (self.n_bin + 1) + 1, dtype=np.int64).reshape(n, self.n_bin + 1)

    def layer_args(self):
        """The layer's arguments (twml's names): the calibration as arrays."""
        if self.bin_vals is None:
            raise RuntimeError(f"{type(self).__name__}: call calibrate() (or fit) before to_layer()")
        n = len(self.feature_ids)
        size = n * (self.n_bin + 1)
        if 2 ** self.out_bits <= size:
            raise ValueError(f"{type(self).__name__}: the discretizer makes up to {size} new ids but "
                             f"out_bits={self.out_bits} allows {2 ** self.out_bits}; raise out_bits")
        return {"n_feature": n, "n_bin": self.n_bin, "out_bits": self.out_bits,
                "bin_values": self.bin_vals.reshape(-1), "hash_keys": self.feature_ids,
                "hash_values": np.arange(n, dtype=np.int64), "bin_ids": self.bin_ids.reshape(-1),
                "feature_offsets": np.arange(0, size, self.n_bin + 1, dtype=np.int64)}

    def to_layer(self, name=None, keras_module=None):
        """A PercentileDiscretizer layer (Keras 3; tf_keras with keras_module=tf_keras)."""
        return _layers(keras_module)[self._layer](**self.layer_args(), name=name)


class MDLCalibrator(PercentileDiscretizerCalibrator):
    """twml's MDLCalibrator: PercentileDiscretizerCalibrator (the same bins:
    twml's MDLCalibrator subclasses it and only changes to_layer) returning a
    `bpr_ops.MDL` layer. out_bits 1 to 62 (the MDL layer computes in 64 bits)."""

    _max_out_bits = 62
    _layer = "MDL"


def isotonic_regression(y, w):
    """Weighted least-squares non-decreasing fit of y (pool adjacent violators)."""
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    means, weights, sizes = [], [], []
    for yi, wi in zip(y, w):
        means.append(yi)
        weights.append(wi)
        sizes.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            wsum = weights[-2] + weights[-1]
            m = (means[-2] * weights[-2] + means[-1] * weights[-1]) / wsum if wsum > 0 else means[-1]
            sizes[-2] += sizes[-1]
            means[-2], weights[-2] = m, wsum
            means.pop(), weights.pop(), sizes.pop()
    return np.repeat(means, sizes)


class IsotonicCalibrator:
    """twml's IsotonicCalibrator: accumulates (predictions, targets, weights)
    [n, d] per class, fits isotonic regression per class and bins it into
    n_bin points (twml's binning: equal steps, or `similar_bins`), returning a
    `bpr_ops.Isotonic` layer. twml calls sklearn's isotonic_regression; this
    is our own pool-adjacent-violators (the same least-squares fit).
    Keeps every value (as twml); `max_values` bounds memory with a weighted
    reservoir per class (then the curve is fitted on the sample)."""

    def __init__(self, n_bin, similar_bins=False, max_values=_DEFAULT_MAX_VALUES, seed=0):
        if not isinstance(n_bin, int) or n_bin < 1:
            raise ValueError(f"IsotonicCalibrator: n_bin must be an int >= 1, got {n_bin!r}")
        self.n_bin, self.similar_bins, self.max_values = n_bin, similar_bins, max_values
        self._rng = np.random.default_rng(seed)
        self._classes: dict[int, tuple[_Feature, _Feature]] = {}
        self.xs_input = self.ys_input = None

    def accumulate(self, predictions, targets, weights=None):
        p, t = _numpy(predictions), _numpy(targets)
        if p.ndim == 1:
            p, t = p.reshape(-1, 1), t.reshape(-1, 1)
        if p.shape != t.shape or p.ndim != 2:
            raise ValueError(f"IsotonicCalibrator.accumulate: predictions and targets must be [n, d] of one "
                             f"shape, got {p.shape} and {t.shape}")
        w = np.ones(p.shape[0]) if weights is None else _numpy(weights).reshape(-1).astype(np.float64)
        if w.size != p.shape[0]:
            raise ValueError(f"IsotonicCalibrator.accumulate: weights must be [n = {p.shape[0]}], got {w.shape}")
        for c in range(p.shape[1]):
            # Predictions and targets must be sampled together: one reservoir
            # over (prediction, target) pairs, the target carried as a value.
            pair = np.stack([p[:, c], t[:, c]], axis=1).astype(np.float64)
            feat = self._classes.get(c)
            if feat is None:
                feat = self._classes[c] = _Feature(self.max_values, self._rng)
            feat.add(pair, w)

    def fit(self, dataset):
        """Accumulates a dataset of (predictions, targets[, weights]) and calibrates."""
        for element in dataset:
            self.accumulate(*element)
        return self.calibrate()

    def _boundaries(self, n):
        if self.n_bin > n:
            raise ValueError(f"IsotonicCalibrator: n_bin ({self.n_bin}) must be <= the number of samples ({n})")
        step = n // self.n_bin
        if self.similar_bins:
            edges = np.linspace(0, n - step, num=self.n_bin, dtype=int)
        else:
            edges = np.arange(0, step * self.n_bin, step)
        return np.append(edges, n)

    def calibrate(self):
        if not self._classes:
            raise RuntimeError("IsotonicCalibrator: nothing was accumulated")
        xs_rows, ys_rows = [], []
        for c in sorted(self._classes):
            pairs, w = self._classes[c].arrays()
            order = pairs[:, 0].argsort()
            values, targets, w = pairs[order, 0], pairs[order, 1], w[order]
            fitted = isotonic_regression(targets, w)
            edges = self._boundaries(values.size)
            xs, ys = [], []
            for s, e in zip(edges, edges[1:]):
                lw = w[s:e]
                xs.append(np.sum(values[s:e] * lw) / np.sum(lw))
                ys.append(np.sum(fitted[s:e] * lw) / np.sum(lw))
            xs_rows.append(xs)
            ys_rows.append(ys)
        self.xs_input = np.array(xs_rows, dtype=np.float32)
        self.ys_input = np.array(ys_rows, dtype=np.float32)
        return self

    def to_layer(self, name=None, keras_module=None):
        if self.xs_input is None:
            raise RuntimeError("IsotonicCalibrator: call calibrate() (or fit) before to_layer()")
        layers = _layers(keras_module)
        return layers["Isotonic"](n_unit=self.xs_input.shape[0], n_bin=self.n_bin, xs_input=self.xs_input,
                                  ys_input=self.ys_input, name=name)


def _layers(keras_module):
    names = ("HashingDiscretizer", "Isotonic", "PercentileDiscretizer", "MDL")
    if keras_module is None or keras_module.__name__ == "keras":
        from . import discretizers

        return {n: getattr(discretizers, n) for n in names}
    from . import tf_keras_layers

    return {n: getattr(tf_keras_layers, n) for n in names}
