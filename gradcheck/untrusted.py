"""Load and call an implementation under test as untrusted code.

Whatever it does (raise, print, return the wrong thing, write into its inputs)
becomes a Problem (a verdict), never a crash of the checker. The same functions
serve both ways of running it: in the checker's own process (``call_impl``, the
trusted modes) and in the worker process (``gradcheck.worker``), which uses
``build`` to load it and ``convert_return`` to turn what it returns into plain real
float arrays before they cross to the checker; the checker then applies ``validate``.
"""
import contextlib
import importlib
import importlib.util
import inspect
import math
import os
import sys
import traceback
import warnings
from typing import NamedTuple, Optional

import numpy as np

from .errors import DeclarationError, UsageError
from .model import GRAD_NAMES
from .model import (DEFAULT_CELL, INPUT_NAME, LOSS_NAME, STATE_NAME, STATE_OUT_NAME, array,
                    describe)

__all__ = ["Problem", "Outcome", "printable", "check_spec", "load_impl", "import_module_of",
           "load_adapted", "build",
           "model_of",
           "fill_skipped", "call_impl", "convert_return", "validate", "where_raised",
           "problem_name", "PROBLEM_NAMES"]

# What a Problem may be called (the worker's messages are checked against this list).
PROBLEM_NAMES = ("exception", "declaration", "return_value", "missing_grad", "shape", "nan",
                 "inputs_modified", "timeout", "time_limit", "memory", "crashed", "protocol")


# Unicode categories of characters that a terminal acts on or that hide what follows:
# controls (C0, DEL, C1: escape sequences, carriage return, backspace, bell), format
# characters (bidirectional overrides, zero-width), line and paragraph separators.
_UNPRINTABLE = ("Cc", "Cf", "Zl", "Zp")


def printable(text, keep="\n\t"):
    """``text`` with every control or format character but those in ``keep`` written as
    an escape (``\x1b``, ``\u202e``): what code under test wrote or raised reaches a
    terminal, a report or a grader's feedback as text, never as a terminal command."""
    import unicodedata
    if text.isprintable():
        return text
    out = []
    for c in text:
        if c not in keep and unicodedata.category(c) in _UNPRINTABLE:
            code = ord(c)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(c)
    return "".join(out)


class Problem(NamedTuple):
    """A contract violation. name: one of PROBLEM_NAMES."""
    name: str
    message: str


class Outcome(NamedTuple):
    """What one call returned, validated. ``extra``: the cell's further outgoing states
    by name (an LSTM's c_last [B, R]), each None when unusable; {} for the RNN."""
    loss: Optional[float]
    grads: Optional[dict]
    h_last: Optional[np.ndarray]
    problems: list
    extra: dict = {}

    def outputs(self):
        """The forward's outputs by the model's names (loss, h_last, c_last, ...)."""
        return dict(self.extra, loss=self.loss, h_last=self.h_last)


_ALLOWED = "expected FILE.py[:FUNC] or MODULE:FUNC naming a function"
DEFAULT_FUNC = "loss_and_grads"     # the contract's name: what FILE.py alone names


def check_spec(spec, option="impl"):
    """(where, func) of a well-formed ``FILE.py:FUNC`` (an existing file; ``FILE.py``
    alone names its ``loss_and_grads``) or ``MODULE:FUNC``; UsageError naming ``option``
    (the one the user gave it as) otherwise. Imports nothing (the checker calls it before
    starting a worker)."""
    if isinstance(spec, str) and ":" not in spec and spec.endswith(".py"):
        spec = f"{spec}:{DEFAULT_FUNC}"
    if not isinstance(spec, str) or spec.count(":") < 1:
        raise UsageError(option, spec, _ALLOWED)
    where, _, func = spec.rpartition(":")
    if not where or not func.isidentifier():
        raise UsageError(option, spec, _ALLOWED)
    if _is_file(where) and not os.path.isfile(where):
        raise UsageError(option, spec, f"no such file {where!r}; {_ALLOWED}")
    return where, func


def _is_file(where):
    return where.endswith(".py") or os.sep in where


def load_impl(spec, option="impl"):
    """``FILE.py:FUNC`` or ``MODULE:FUNC`` -> the callable; UsageError naming ``option``
    (the one the user gave it as: ``forward`` for ``gradcheck layer --forward``) when it
    cannot load."""
    allowed = _ALLOWED
    where, func = check_spec(spec, option)
    module = _import(where, spec, option)
    fn = getattr(module, func, None)
    if fn is None:
        raise UsageError(option, spec, f"{where} has no attribute {func!r}; {allowed}")
    if not callable(fn):
        raise UsageError(option, spec, f"{where}.{func} is not callable; {allowed}")
    return fn


def import_module_of(spec, option="impl"):
    """The module of ``FILE.py:FUNC`` or ``MODULE:FUNC``, imported as ``load_impl``
    imports it, FUNC not looked up (an adapter's declaration names what it uses, and
    says so when the module lacks it); UsageError naming ``option`` when it cannot be."""
    where, _ = check_spec(spec, option)
    return _import(where, spec, option)


def _import(where, spec, option):
    """The module ``where`` (a file, or a module's name) of ``spec``, imported; its import
    runs user code, so whatever it raises is a UsageError naming ``option``."""
    try:
        if _is_file(where):
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
        if isinstance(exc, KeyboardInterrupt):
            raise
        at = "" if isinstance(exc, SyntaxError) else where_raised(exc)   # (it names its line)
        hint = ("; code that imports its own package is checked from the package's root as "
                f"--{option} PACKAGE.MODULE:FUNC, or given that root with --path DIR"
                if isinstance(exc, ModuleNotFoundError) and _is_file(where) else "")
        raise UsageError(option, spec, f"importing {where} raised {type(exc).__name__}: "
                                       f"{exc}{at}{hint}") from None
    return module


@contextlib.contextmanager
def on_path(folder):
    """``folder`` (a package's root, or None: nothing) first on sys.path for the block,
    taken off at its end: the code's own package imports while it loads."""
    if folder is None:
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        if folder in sys.path:
            sys.path.remove(folder)


def load_adapted(spec, adapter):
    """The loss_and_grads callable for module ``spec`` (FILE.py or MODULE) under
    ``adapter``, plain data (a style name or a JSON-able declaration, gradcheck.adapters);
    a worker process given these two values builds the same implementation."""
    from .adapters import build as build_adapted
    return build_adapted(spec, adapter)


def model_of(request):
    """The model.Model a request names (``"cell"``, ``"cell_options"``; default: the RNN)."""
    return describe(request.get("cell") or DEFAULT_CELL,
                    **dict.fromkeys(request.get("cell_options") or (), True))


def build(request):
    """The implementation described by ``request``, a JSON-able dict: ``{"spec": ...}``,
    with ``"adapter"`` (plain data) for code written in layers, classes or cells, and
    ``"cell"``, ``"cell_options"`` for a cell other than the RNN, ``"path"`` for the root
    of the code's own package (on sys.path while it loads). The worker process
    loads what it runs through this one function, so what it can run is what this can
    build."""
    if not isinstance(request, dict) or not isinstance(request.get("spec"), str):
        raise UsageError("impl", request, "expected a request {'spec': 'FILE.py:FUNC', ...}")
    with on_path(request.get("path")):
        if request.get("adapter") is not None:
            fn = load_adapted(request["spec"], request["adapter"])
        else:
            fn = load_impl(request["spec"])
    return fill_skipped(fn, request["skip"], model_of(request)) if request.get("skip") else fn


def fill_skipped(fn, skip, model=None):
    """``fn`` with the gradients in ``skip`` that it does not return filled in with zeros
    (they are never compared): the contract's other checks still see a full dict."""
    model = model or describe()

    def filled(params, x, y, h0, *states, **options):
        out = fn(params, x, y, h0, *states, **options)
        if (isinstance(out, tuple) and len(out) == len(model.output_names) + 1
                and isinstance(out[1], dict)):
            arrays = dict(params, **{INPUT_NAME: x, STATE_NAME: h0},
                          **dict(zip(model.state_names[1:], states)))
            grads = dict(out[1])
            for n in skip:               # (an output skipped, c_last, is not a gradient)
                if n in arrays:
                    grads.setdefault(n, np.zeros(np.shape(arrays[n])))
            out = (out[0], grads) + out[2:]
        return out
    filled.__name__ = filled.__qualname__ = getattr(fn, "__qualname__", "impl")
    filled.__module__ = getattr(fn, "__module__", "?")
    return filled


_PACKAGE_DIR = os.path.dirname(__file__) + os.sep
_ADAPTERS = os.path.join(_PACKAGE_DIR, "adapters.py")
_LIBRARY_DIRS = tuple(os.path.dirname(p) + os.sep for p in
                      (os.__file__, np.__file__)) + (_PACKAGE_DIR, "<frozen ")


def where_raised(exc):
    """`` at FILE:LINE in FUNC`` of the innermost frame in the user's code (not the
    standard library's, its frozen import machinery's, NumPy's or gradcheck's); else, when
    an adapter of gradcheck's saw it alone, that it was raised on what the user's code
    returned; else "" (no frame of the user's ran: naming another would blame it)."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if not f.filename.startswith(_LIBRARY_DIRS)]
    if mine:
        last = mine[-1]
        return f" at {os.path.basename(last.filename)}:{last.lineno} in {last.name}"
    if any(f.filename == _ADAPTERS for f in frames):
        return ", in the adapter, on what your code returned"
    return ""


def problem_name(exc):
    """The Problem an exception out of a call is: ``memory`` (MemoryError), ``declaration``
    (an adapter's declaration names what the code lacks or returns otherwise:
    DeclarationError), else ``exception``."""
    if isinstance(exc, MemoryError):
        return "memory"
    return "declaration" if isinstance(exc, DeclarationError) else "exception"


def exception_message(exc, fn=None, options=None, model=None):
    """``raised TYPE: message at FILE:LINE in FUNC``, bounded in length. Given the
    function and the options it was called with: a TypeError raised by the call itself
    (its arguments did not bind, so no frame of the function ran) names the call the
    contract of ``model``'s cell makes (default: the RNN's) and the function's own
    signature, instead of the checker's frame."""
    try:
        text = str(exc)
    except BaseException:                  # its __str__ is user code too
        text = "<message could not be shown>"
    if len(text) > 300:
        text = text[:300] + "..."
    if isinstance(exc, DeclarationError):      # its one line says it all: no frame to name
        return printable(text)
    if fn is not None and _did_not_bind(exc):
        states = model.state_names if model is not None else (STATE_NAME,)
        whose = ("the contract" if model is None or model.cell.name == DEFAULT_CELL
                 else f"the contract of --cell {model.cell.name}")
        return printable(f"cannot be called the way {whose} calls it, "
                         f"{contract_call(fn, options or {}, states)}: TypeError: {text}"
                         f"{_signature(fn)}")
    return printable(f"raised {type(exc).__name__}: {text}{where_raised(exc)}")


def contract_call(fn, options, states=(STATE_NAME,)):
    """``loss_and_grads(params, x, y, h0, loss=..., activations=..., reduction=...)``,
    with the cell's incoming ``states`` (h0, c0 for the LSTM)."""
    name = getattr(fn, "__name__", None)
    name = name if isinstance(name, str) and name.isidentifier() else "loss_and_grads"
    keywords = "".join(f", {k}=..." for k in options)
    return f"{name}(params, x, y, {', '.join(states)}{keywords})"


def _did_not_bind(exc):
    """A TypeError whose traceback ends in the calling frame: the callee never ran."""
    tb = exc.__traceback__
    return isinstance(exc, TypeError) and tb is not None and tb.tb_next is None


def _signature(fn):
    try:
        return f"; its signature is {inspect.signature(fn)}"
    except BaseException:                  # a builtin without one, or a hostile object
        return ""


def _snapshot(params, x, y, h0, states=None):
    arrays = dict(params, y=y, **{INPUT_NAME: x, STATE_NAME: h0}, **(states or {}))
    return {n: np.array(a, copy=True) for n, a in arrays.items()}


class _Rejected(Exception):
    pass


_DTYPE_KIND = {"c": "complex", "b": "bool", "U": "strings", "S": "bytes", "O": "Python objects",
               "i": "integers", "u": "integers", "M": "dates", "m": "time deltas", "V": "records"}


def _real(value, what):
    """``value`` as a real float32 or float64 array, copied; _Rejected (with a message
    naming ``what``) for anything else. Python numbers (and lists of them) are accepted,
    NumPy arrays and scalars only of a float dtype."""
    if isinstance(value, (bool, np.bool_)):
        raise _Rejected(f"{what} is a bool; expected real floats")
    numpy_typed = isinstance(value, (np.ndarray, np.generic))
    if isinstance(value, int) and not numpy_typed:
        try:
            return np.array(float(value))
        except OverflowError:
            raise _Rejected(f"{what} is an integer too large for a float") from None
    try:
        arr = np.array(value, copy=True)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _Rejected(f"{what} could not be converted to an array: "
                        f"{exception_message(exc)}") from None
    kind = arr.dtype.kind
    if kind == "f":
        if arr.dtype in (np.float32, np.float64):
            return arr.astype(arr.dtype.newbyteorder("="), copy=False)
        with np.errstate(over="ignore"):
            out = arr.astype(np.float64)
        if np.any(np.isfinite(arr) & ~np.isfinite(out)):
            raise _Rejected(f"{what} ({arr.dtype}) overflows float64")
        return out
    if kind in "iu" and not numpy_typed:            # Python ints in a list
        return arr.astype(np.float64)
    if kind == "O" and not numpy_typed and arr.size and all(
            type(v) is int for v in arr.flat):
        raise _Rejected(f"{what} holds integers too large for a float")
    name = _DTYPE_KIND.get(kind, str(arr.dtype))
    raise _Rejected(f"{what} holds {name} (dtype {arr.dtype}); expected real floats "
                    f"(float32 or float64)")


def convert_return(out, model=None):
    """What an implementation returned -> (arrays, problems, grads_given): ``arrays`` maps
    ``loss`` (a 0-d float64 array), each gradient present and ``h_last`` (and the cell's
    further states, c_last) to real float arrays (copies); ``problems`` lists what could
    not be taken; ``grads_given`` says whether grads was a dict (validate() then names
    missing gradients). ``model``: the model.Model of the check (default: the RNN's).
    Calls whatever user code the conversion runs (__array__, __float__, ...), so call it
    where that is safe."""
    model = model or describe()
    problems = []
    wanted = ("loss", "grads") + model.state_out_names
    if not isinstance(out, tuple) or tuple.__len__(out) != len(wanted):
        if model.cell.name == DEFAULT_CELL:       # its words from before there were cells
            kind = (f"a tuple of {tuple.__len__(out)}" if isinstance(out, tuple)
                    else type(out).__name__)
            expected = f"expected a tuple ({', '.join(wanted)})"
        else:
            kind = (f"{tuple.__len__(out)} values" if isinstance(out, tuple)
                    else f"a {type(out).__name__}")
            expected = f"--cell {model.cell.name} expects ({', '.join(wanted)})"
        return {}, [Problem("return_value", f"returned {kind}; {expected}")], False
    loss, grads, h_last, *more_states = (tuple.__getitem__(out, i) for i in range(len(wanted)))
    arrays = {}
    try:
        if isinstance(loss, (str, bytes)):
            raise _Rejected(f"returned a loss of type {type(loss).__name__}; expected a float")
        value = _real(loss, "the loss")
        if value.size != 1:
            raise _Rejected(f"returned a loss of shape {value.shape}; expected a float")
        arrays[LOSS_NAME] = np.array(float(value.reshape(())), dtype=np.float64)
    except _Rejected as exc:
        problems.append(Problem("return_value", str(exc)))
    if not isinstance(grads, dict):
        problems.append(Problem("return_value", f"returned grads of type "
                                f"{type(grads).__name__}; expected a dict"))
    else:
        wrong = _key_set(grads, model.grad_names)
        if wrong is not None:
            problems.append(wrong)
        for name in model.grad_names:
            try:
                if not dict.__contains__(grads, name):
                    continue                              # named by _key_set
                arrays[name] = _real(dict.__getitem__(grads, name), f"grads[{name!r}]")
            except _Rejected as exc:
                problems.append(Problem("return_value", str(exc)))
    for name, value in zip(model.state_out_names, [h_last] + more_states):
        try:
            arrays[name] = _real(value, name)
        except _Rejected as exc:
            problems.append(Problem("return_value", str(exc)))
    return arrays, problems, isinstance(grads, dict)


_KEYS_SHOWN = 12          # keys of a wrong grads dict quoted (the rest counted)


def _key_set(grads, grad_names=GRAD_NAMES):
    """A ``missing_grad`` Problem listing the keys returned against those expected when a
    gradient is missing (the message is the same wherever it is quoted), else None."""
    missing = [n for n in grad_names if not dict.__contains__(grads, n)]
    if not missing:
        return None
    keys = []
    for key in dict.keys(grads):
        try:
            text = key if type(key) is str else repr(key)
        except BaseException:
            text = f"<a {type(key).__name__}>"
        keys.append(text if len(text) <= 30 else text[:27] + "...")
    shown = ", ".join(keys[:_KEYS_SHOWN]) + (f" and {len(keys) - _KEYS_SHOWN} more"
                                            if len(keys) > _KEYS_SHOWN else "")
    return Problem("missing_grad", f"grads has keys {shown or '(none)'}; expected "
                                   f"{', '.join(grad_names)} (missing {', '.join(missing)})")


def validate(arrays, problems, shapes, grads_given=True, skip=(), model=None):
    """The Outcome of real float ``arrays`` (convert_return's, or the worker's as
    received): shapes against ``shapes`` (name -> the shape of that input), missing
    gradients (but those in ``skip``, declared not computed), NaN or inf.
    ``grads_given``: whether grads was a dict at all; ``model``: the check's
    model.Model (default: the RNN's)."""
    model = model or describe()
    problems = list(problems)
    listed = any(p.name == "missing_grad" for p in problems)     # the key sets, by _key_set
    loss = arrays.get(LOSS_NAME)
    loss = None if loss is None else float(loss)
    clean = {}
    for name in model.grad_names:
        if name not in arrays:
            if grads_given and name not in skip and not listed:
                problems.append(Problem("missing_grad", f"grads has no {name!r}"))
            continue
        arr = arrays[name]
        if arr.shape != shapes[name]:
            problems.append(Problem("shape", f"grads[{name!r}] has shape {arr.shape}; "
                                    f"expected {shapes[name]}, the shape of {name}"))
            continue
        clean[name] = arr.astype(np.float64)
    states = {}
    for incoming, outgoing in model.cell.states:
        state = arrays.get(outgoing)
        if state is not None:
            want = shapes[incoming]
            if state.shape != want:
                letters = ", ".join(array(STATE_NAME).letters)
                problems.append(Problem("shape", f"{outgoing} has shape {state.shape}; "
                                        f"expected ({letters}) = {want}"))
                state = None
            else:
                state = state.astype(np.float64)
        states[outgoing] = state
    nonfinite = [n for n, a in clean.items() if not np.all(np.isfinite(a))]
    if loss is not None and not math.isfinite(loss):
        nonfinite.insert(0, LOSS_NAME)
    nonfinite += [n for n, a in states.items() if a is not None and not np.all(np.isfinite(a))]
    if nonfinite:
        problems.append(Problem("nan", f"returned NaN or inf in {', '.join(nonfinite)}"))
    h_last = states.pop(STATE_OUT_NAME)
    return Outcome(loss, clean if grads_given else None, h_last, problems, states)


def modified(before, after):
    """The names whose arrays differ byte for byte (NaN payloads included)."""
    return [n for n in before if before[n].tobytes() != after[n].tobytes()]


def modified_problem(changed):
    return Problem("inputs_modified", f"modified its input{'s' if len(changed) > 1 else ''} "
                                      f"{', '.join(changed)} in place; it must not")


def call_impl(impl, params, x, y, h0, options, states=None, model=None):
    """Call ``impl`` in this process (trusted modes) on copies owned by the checker;
    validate what comes back. ``states``: the cell's further incoming states by name
    (an LSTM's c0), passed after h0; ``model``: the check's model.Model (default: RNN).

    Shapes: x [T, B, I]; h0 [B, R]. Returns an Outcome whose fields are None when unusable.
    """
    model = model or describe()
    states = states or {}
    args = _snapshot(params, x, y, h0, states)
    call_params = {n: args[n] for n in params}
    before = _snapshot(params, x, y, h0, states)
    try:
        # Warnings it triggers are shown, never raised: a caller's filter that turns them
        # into errors (pytest's filterwarnings = error, python -W error) would make a
        # warning -- even a spurious one, such as NumPy's "invalid value encountered in
        # matmul" from a BLAS kernel that multiplies a fresh output's garbage by zero --
        # a verdict, and a verdict is about what the code returns, as in its worker.
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            out = impl(call_params, args[INPUT_NAME], args["y"], args[STATE_NAME],
                       *(args[n] for n in model.state_names[1:]), **options)
    except BaseException as exc:  # untrusted: even SystemExit is a verdict here
        if isinstance(exc, KeyboardInterrupt):
            raise
        return Outcome(None, None, None,
                       [Problem(problem_name(exc), exception_message(exc, impl, options,
                                                                     model))])
    changed = modified(before, args)
    problems = [modified_problem(changed)] if changed else []
    arrays, more, grads_given = convert_return(out, model)
    shapes = {n: a.shape for n, a in args.items()}
    return validate(arrays, problems + more, shapes, grads_given, model=model)
