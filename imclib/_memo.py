"""Recent results kept in memory up to a number of bytes: the weight maps of
:func:`imclib.mapping.map_weights` and the transfer matrices of wired arrays
(:func:`imclib.layer.program_layer`), both keyed by a :func:`digest` of their input array."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Callable, Hashable

import numpy as np


def digest(array) -> bytes:
    """16-byte BLAKE2b digest of an array's values in C order."""
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).digest()


class Recent:
    """The most recent results by key; once their ``nbytes`` add up to more than
    ``max_bytes``, the least recently used go first (the latest result is always kept)."""

    def __init__(self, max_bytes: int, nbytes: Callable[[object], int]):
        self.max_bytes, self.nbytes, self.entries = max_bytes, nbytes, OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: Hashable, compute: Callable[[], object]):
        """The result kept under ``key``, or ``compute()`` kept under it."""
        if key not in self.entries:
            self.entries[key] = compute()
            while len(self.entries) > 1 and sum(map(self.nbytes, self.entries.values())) > self.max_bytes:
                self.entries.popitem(last=False)
        self.entries.move_to_end(key)
        return self.entries[key]
