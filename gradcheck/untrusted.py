"""Load and call an implementation under test as untrusted code.

Whatever it does (raise, print, return the wrong thing, write into its inputs)
becomes a Problem (a verdict), never a crash of the checker.
"""
import importlib
import importlib.util
import os
import sys
import traceback
from typing import NamedTuple, Optional

import numpy as np

from .errors import UsageError
from .model import GRAD_NAMES, INPUT_NAME, STATE_NAME, STATE_OUT_NAME, array

__all__ = ["Problem", "Outcome", "load_impl", "call_impl"]


class Problem(NamedTuple):
    """A contract violation. name: exception, return_value, missing_grad, shape, nan,
    inputs_modified."""
    name: str
    message: str


class Outcome(NamedTuple):
    loss: Optional[float]
    grads: Optional[dict]
    h_last: Optional[np.ndarray]
    problems: list


def load_impl(spec):
    """``FILE.py:FUNC`` or ``MODULE:FUNC`` -> the callable; UsageError when it cannot load."""
    allowed = "expected FILE.py:FUNC or MODULE:FUNC naming a function"
    if not isinstance(spec, str) or spec.count(":") < 1:
        raise UsageError("impl", spec, allowed)
    where, _, func = spec.rpartition(":")
    if not where or not func.isidentifier():
        raise UsageError("impl", spec, allowed)
    try:
        if where.endswith(".py") or os.sep in where:
            if not os.path.isfile(where):
                raise UsageError("impl", spec, f"no such file {where!r}; {allowed}")
            name = "_gradcheck_impl_" + os.path.splitext(os.path.basename(where))[0]
            module_spec = importlib.util.spec_from_file_location(name, where)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module          # dataclasses and pickling look it up there
            sys.path.insert(0, os.path.dirname(os.path.abspath(where)))
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
            finally:
                sys.path.pop(0)
        else:
            module = importlib.import_module(where)
    except UsageError:
        raise
    except BaseException as exc:  # its import ran user code: anything can come out
        raise UsageError("impl", spec,
                         f"importing {where} raised {type(exc).__name__}: {exc}") from None
    fn = getattr(module, func, None)
    if fn is None:
        raise UsageError("impl", spec, f"{where} has no attribute {func!r}; {allowed}")
    if not callable(fn):
        raise UsageError("impl", spec, f"{where}.{func} is not callable; {allowed}")
    return fn


def _where_raised(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" at {os.path.basename(last.filename)}:{last.lineno} in {last.name}"


def _snapshot(params, x, y, h0):
    arrays = dict(params, y=y, **{INPUT_NAME: x, STATE_NAME: h0})
    return {n: np.array(a, copy=True) for n, a in arrays.items()}


def call_impl(impl, params, x, y, h0, options):
    """Call ``impl`` on copies owned by the checker; validate what comes back.

    Shapes: x [T, B, I]; h0 [B, R]. Returns an Outcome whose fields are None when unusable.
    """
    args = _snapshot(params, x, y, h0)
    call_params = {n: args[n] for n in params}
    before = _snapshot(params, x, y, h0)
    problems = []
    try:
        out = impl(call_params, args[INPUT_NAME], args["y"], args[STATE_NAME], **options)
    except BaseException as exc:  # untrusted: even SystemExit is a verdict here
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Outcome(None, None, None, [Problem(
            "exception", f"raised {type(exc).__name__}: {exc}{_where_raised(exc)}")])
    changed = [n for n in before if not np.array_equal(before[n], args[n], equal_nan=True)]
    if changed:
        problems.append(Problem("inputs_modified",
                                f"modified its input{'s' if len(changed) > 1 else ''} "
                                f"{', '.join(changed)} in place; it must not"))
    if not isinstance(out, tuple) or len(out) != 3:
        kind = f"a tuple of {len(out)}" if isinstance(out, tuple) else type(out).__name__
        return Outcome(None, None, None, problems + [Problem(
            "return_value", f"returned {kind}; expected a tuple (loss, grads, h_last)")])
    loss, grads, h_last = out
    try:
        arr = np.asarray(loss)
        loss = float(arr.item()) if arr.size == 1 and arr.dtype.kind in "iuf" else None
    except (TypeError, ValueError):
        loss = None
    if loss is None:
        problems.append(Problem("return_value", f"returned a loss of type "
                                f"{type(out[0]).__name__}; expected a float"))
    if not isinstance(grads, dict):
        problems.append(Problem("return_value", f"returned grads of type "
                                f"{type(grads).__name__}; expected a dict"))
        grads = None
    else:
        expected = {n: args[n].shape for n in GRAD_NAMES}     # each the shape of its input
        clean = {}
        for name in GRAD_NAMES:
            if name not in grads:
                problems.append(Problem("missing_grad", f"grads has no {name!r}"))
                continue
            try:
                arr = np.asarray(grads[name], dtype=np.float64)
            except (TypeError, ValueError):
                problems.append(Problem("return_value", f"grads[{name!r}] is not numeric"))
                continue
            if arr.shape != expected[name]:
                problems.append(Problem("shape", f"grads[{name!r}] has shape {arr.shape}; "
                                        f"expected {expected[name]}, the shape of {name}"))
                continue
            clean[name] = arr
        grads = clean
    try:
        h_last = np.asarray(h_last, dtype=np.float64)
        want = args[STATE_NAME].shape
        if h_last.shape != want:
            letters = ", ".join(array(STATE_NAME).letters)
            problems.append(Problem("shape", f"{STATE_OUT_NAME} has shape {h_last.shape}; "
                                    f"expected ({letters}) = {want}"))
            h_last = None
    except (TypeError, ValueError):
        problems.append(Problem("return_value", f"{STATE_OUT_NAME} is not numeric"))
        h_last = None
    nonfinite = [n for n, a in (grads or {}).items() if not np.all(np.isfinite(a))]
    if loss is not None and not np.isfinite(loss):
        nonfinite.insert(0, "loss")
    if h_last is not None and not np.all(np.isfinite(h_last)):
        nonfinite.append(STATE_OUT_NAME)
    if nonfinite:
        problems.append(Problem("nan", f"returned NaN or inf in {', '.join(nonfinite)}"))
    return Outcome(loss, grads, h_last, problems)
