"""CRC32C of an array's bytes with the GIL released, so that chunk checksums on reader threads run in parallel.

``google_crc32c.value`` (1.9) releases the GIL only for ``bytes`` objects of at least 1 MiB: over a numpy array or
a memory map, and over any chunk under 1 MiB (a 256 x 768 float32 chunk is 768 KiB), it holds the GIL for the
whole checksum, so reader threads take turns instead of overlapping. Here the same C function of the same
library (``crc32c_value`` of the libcrc32c that google_crc32c's extension links) is called through ``ctypes``,
which releases the GIL for the call. At import it must give google_crc32c's own results on a probe; if the
library or the symbol cannot be found, or the results differ, :func:`crc32c` is ``google_crc32c.value`` itself
(same results, GIL held). Measurements in benchmarks/README.md ("Random-row reads").
"""

from __future__ import annotations

import ctypes

import google_crc32c
import numpy as np


def _load_nogil():
    """``crc32c_value(const uint8_t *, size_t)`` of google_crc32c's C library through ctypes, or None."""
    try:
        # absent when google_crc32c runs its pure-Python fallback
        from google_crc32c import _crc32c

        fn = ctypes.CDLL(_crc32c.__file__).crc32c_value  # resolved through the extension's link to libcrc32c
    except (ImportError, OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = ctypes.c_uint32, [ctypes.c_void_p, ctypes.c_size_t]
    probe = b"123456789" + bytes(range(256)) * 17 + b"\x00\x01\x02"   # odd length: unaligned tail bytes
    buf = ctypes.create_string_buffer(probe, len(probe))
    for lo, hi in ((0, 9), (0, len(probe)), (3, len(probe) - 1)):
        if fn(ctypes.addressof(buf) + lo, hi - lo) != google_crc32c.value(probe[lo:hi]):
            return None
    return fn


_NOGIL = _load_nogil()
#: True when :func:`crc32c` releases the GIL (the ctypes path loaded and passed its probe).
RELEASES_GIL = _NOGIL is not None


def crc32c(arr: np.ndarray) -> int:
    """The CRC32C of the bytes of C-contiguous ``arr`` (equal to ``google_crc32c.value(arr)``), GIL released
    where :data:`RELEASES_GIL`. ``arr`` must stay alive during the call (the caller's reference keeps it)."""
    if _NOGIL is None:
        return google_crc32c.value(arr)
    if not arr.flags.c_contiguous:
        raise ValueError("crc32c needs a C-contiguous array (got a strided view); pass a contiguous copy")
    return _NOGIL(arr.ctypes.data, arr.nbytes)


__all__ = ["RELEASES_GIL", "crc32c"]
