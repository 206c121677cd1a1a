"""The strict wire format between the grader and a submission's worker (child -> parent).

A frame is a 4-byte big-endian length, a JSON header of that length, then the raw bytes
of the arrays the header lists, in order. The parent never unpickles anything the child
sends: the child runs a student's code and may write anything to its pipe.
"""
import json
import struct

import numpy as np

__all__ = ["WireError", "encode", "read_frame", "MAX_HEADER", "MAX_ARRAY_BYTES"]

MAX_HEADER = 1 << 20            # a header lists ~10 arrays: anything this long is garbage
MAX_ARRAY_BYTES = 1 << 31       # one frame's arrays; beyond it the child is misbehaving
_DTYPES = ("<f8", "<f4")        # what the child sends: call_impl's float64 arrays


class WireError(Exception):
    """The child wrote something that is not a frame of this format."""


def encode(header, arrays=()):
    """A frame: ``header`` (a JSON-able dict) with ``arrays`` = [(key, ndarray)] appended."""
    specs, blobs = [], []
    for key, arr in arrays:
        arr = np.ascontiguousarray(arr, dtype=np.float64)
        specs.append([key, "<f8", list(arr.shape)])
        blobs.append(arr.tobytes())
    head = json.dumps(dict(header, arrays=specs), allow_nan=False).encode()
    return struct.pack(">I", len(head)) + head + b"".join(blobs)


def read_frame(read_exactly):
    """Parse one frame with ``read_exactly(n) -> bytes`` (raises WireError when short).
    Returns (header, {key: ndarray})."""
    (n,) = struct.unpack(">I", read_exactly(4))
    if n > MAX_HEADER:
        raise WireError(f"a header of {n} bytes")
    try:
        header = json.loads(read_exactly(n))
    except ValueError as exc:
        raise WireError(f"a header that is not JSON ({exc})") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
        raise WireError("a header without its list of arrays")
    arrays, total = {}, 0
    for spec in header.pop("arrays"):
        if (not isinstance(spec, list) or len(spec) != 3 or not isinstance(spec[0], str)
                or spec[1] not in _DTYPES or not isinstance(spec[2], list)
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31
                           for d in spec[2]) or len(spec[2]) > 8):
            raise WireError(f"a bad array spec {spec!r}"[:200])
        key, dtype, shape = spec
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        total += size
        if total > MAX_ARRAY_BYTES:
            raise WireError("arrays larger than the wire allows")
        arrays[key] = np.frombuffer(read_exactly(size), dtype=dtype).reshape(shape).copy()
    return header, arrays
