"""A compact, comparable sketch of a text's embedding, carried on ``feedback.classified``.

The classifier's unit embedding (384 floats) is projected onto a fixed random basis of
``SKETCH_DIMS`` dimensions and quantised to int8: 128 bytes, 172 characters of base64. Random
projection keeps cosine similarities (Johnson-Lindenstrauss): at 128 dimensions the cosine of
two near-identical complaints (about 0.9) moves by about 0.02, enough to cluster them without
shipping the whole vector. Cosine ignores each vector's scale, so each sketch is scaled to use
the full int8 range.
"""

from __future__ import annotations

import base64
import functools

import numpy as np
import numpy.typing as npt

SKETCH_SCHEME = "rp128-i8"
SKETCH_DIMS = 128
#: The legacy RandomState's streams are frozen across numpy versions: every process, whatever
#: numpy it runs, builds the same basis, so sketches stay comparable.
_SEED = 23


@functools.cache
def projection(input_dims: int) -> npt.NDArray[np.float32]:
    """The fixed (input_dims x SKETCH_DIMS) random basis sketches are made with."""
    rng = np.random.RandomState(_SEED + input_dims)
    basis = np.asarray(rng.standard_normal((input_dims, SKETCH_DIMS)), dtype=np.float64)
    scaled: npt.NDArray[np.float32] = (basis / np.sqrt(SKETCH_DIMS)).astype(np.float32)
    return scaled


def sketch(embedding: npt.ArrayLike) -> str:
    """The base64 sketch of one embedding (any length; the classifier's is 384)."""
    vector = np.asarray(embedding, dtype=np.float32).ravel()
    projected = vector @ projection(vector.shape[0])
    top = float(np.abs(projected).max())
    if top == 0.0 or not np.isfinite(top):
        quantised = np.zeros(SKETCH_DIMS, dtype=np.int8)
    else:
        quantised = np.clip(np.rint(projected * (127.0 / top)), -127, 127).astype(np.int8)
    return base64.b64encode(quantised.tobytes()).decode("ascii")


def unit_vector(encoded: str) -> npt.NDArray[np.float32] | None:
    """A sketch back as a unit vector of SKETCH_DIMS floats; None when it is not a sketch of
    this scheme or is all zeros (nothing to compare)."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError:
        return None
    if len(raw) != SKETCH_DIMS:
        return None
    vector = np.frombuffer(raw, dtype=np.int8).astype(np.float32)
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        return None
    return vector / norm
