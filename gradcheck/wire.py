"""The messages between the checker and its worker process: a JSON header and raw array bytes.

One message on a pipe is::

    <header length: 4 bytes, little-endian> <payload length: 8 bytes> <header> <payload>

The header is a JSON object; its ``"arrays"`` entry lists ``[name, dtype, shape]`` of the
arrays whose bytes follow, one after the other, in that order. Nothing is pickled: the
checker reads a worker's message with ``decode``, which accepts only float32 or float64
arrays (native byte order), non-negative integer shapes, and byte counts that add up,
and copies every array out of the message. Anything else is a WireError.
"""
import json
import struct

import numpy as np

__all__ = ["WireError", "encode", "decode", "PREFIX", "MAX_HEADER"]

PREFIX = struct.Struct("<IQ")
# A header lists at most a dozen arrays and a few short messages; anything longer is not
# one of ours.
MAX_HEADER = 1 << 20
DTYPES = {"float32": np.dtype(np.float32), "float64": np.dtype(np.float64)}
MAX_DIMS = 8


class WireError(ValueError):
    """A message that does not follow the format above."""


def encode(header, arrays=()):
    """``header`` (a JSON-able dict, without "arrays") and ``arrays`` ([(name, ndarray)],
    each float32 or float64) -> the bytes of one message."""
    listed, chunks = [], []
    for name, arr in arrays:
        arr = np.asarray(arr)
        if not arr.flags.c_contiguous:       # (ascontiguousarray would make 0-d 1-d)
            arr = arr.copy(order="C")
        listed.append([name, arr.dtype.name, list(arr.shape)])
        chunks.append(arr.tobytes())
    head = json.dumps(dict(header, arrays=listed), allow_nan=False).encode()
    payload = b"".join(chunks)
    return PREFIX.pack(len(head), len(payload)) + head + payload


def _is_count(v):
    return type(v) is int and v >= 0


def decode(head, payload, allowed_names):
    """The (header, {name: array}) of one message, the arrays copied; WireError unless
    every array is a float32/float64 array with a name in ``allowed_names`` (each once)
    and the payload holds exactly their bytes."""
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"its header is not JSON ({str(exc)[:80]})") from None
    except RecursionError:
        raise WireError("its header is nested too deeply") from None
    if not isinstance(header, dict) or not isinstance(header.get("arrays"), list):
        raise WireError("its header is not an object listing arrays")
    arrays, offset = {}, 0
    for entry in header["arrays"]:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                and isinstance(entry[2], list) and len(entry[2]) <= MAX_DIMS
                and all(_is_count(n) for n in entry[2])):
            raise WireError(f"an array entry {str(entry)[:80]} is not [name, dtype, shape]")
        name, dtype, shape = entry
        if name not in allowed_names or name in arrays:
            raise WireError(f"an array named {name[:40]!r} is not expected here")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise WireError(f"{name} has dtype {str(dtype)[:20]!r}; only float32 and float64 cross")
        size = DTYPES[dtype].itemsize * int(np.prod(shape, dtype=object))
        if offset + size > len(payload):
            raise WireError(f"{name}'s bytes are missing")
        arrays[name] = np.frombuffer(payload, DTYPES[dtype], int(np.prod(shape, dtype=object)),
                                     offset).reshape(shape).copy()
        offset += size
    if offset != len(payload):
        raise WireError(f"{len(payload) - offset} bytes follow the arrays it lists")
    del header["arrays"]
    return header, arrays
