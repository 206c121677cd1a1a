"""The worker side of ``runner``: ``python -m gradcheck.grade.sandbox LIMIT``, one per
submission (a new one after a test killed it). Each ``load`` request loads the
submission anew (a fresh instance per test; modules from its own folder are dropped
first), after the honesty guard when asked; then it answers calls. Reads pickled
requests from the parent on stdin (the parent is trusted); writes frames of ``wire`` on
a duplicate of its stdout, never pickles. What the submission prints goes to stderr.
"""
import os
import pickle
import struct
import sys


_MAX_FILE = 64 * 2**20


def _read_request(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    return pickle.loads(stream.read(n))


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if limit:
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        # what it writes (its prints go to the grader's temporary file) is bounded too
        resource.setrlimit(resource.RLIMIT_FSIZE, (_MAX_FILE, _MAX_FILE))
    out_fd = os.dup(1)                 # the reply channel; fd 1 becomes stderr for the student
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from gradcheck.grade.wire import encode
    from gradcheck.untrusted import call_impl
    from gradcheck.grade.submission import load_function
    inp = sys.stdin.buffer

    def reply(header, arrays=()):
        data = encode(header, arrays)
        while data:
            data = data[os.write(out_fd, data):]

    fn, attempts, installed = None, [], False
    while True:
        req = _read_request(inp)
        if req is None:
            return
        if req["op"] == "load":
            if req["forbid"] and not installed:
                installed = True
                from gradcheck.grade.honesty import install
                attempts = install(req["forbid"])
            fn, error = load_function(req["path"], req["func"])
            reply({"op": "load", "error": error, "honesty": list(attempts)})
        elif req["op"] == "call":
            out = call_impl(fn, req["params"], req["x"], req["y"], req["h0"], req["options"])
            arrays = [(f"grads.{k}", v) for k, v in (out.grads or {}).items()]
            if out.h_last is not None:
                arrays.append(("h_last", out.h_last))
            if out.loss is not None:           # as an array: JSON has no NaN
                arrays.append(("loss", [out.loss]))
            reply({"op": "call", "grads": out.grads is not None,
                   "problems": [list(p) for p in out.problems], "honesty": list(attempts)},
                  arrays)


if __name__ == "__main__":
    main()
