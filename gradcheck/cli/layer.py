"""``gradcheck layer NAME ...``: check one layer by itself (``gradcheck.layer_check``)."""
from typing import NamedTuple

from ..errors import ExitCode, UsageError
from ..layer_check import LAYER_SPECS, check_layer, spec_of
from ..model import (DEFAULT_ACTIVATIONS, DEFAULT_DTYPE, DEFAULT_LOSS, DEFAULT_REDUCTION, SIZES,
                     cell)
from ..text import answer
from .skeleton import PATH_HELP, BadUsage, Outcome, Parser, flag, integer, run

__all__ = ["build_parser", "main"]

LAYER_BATCH = 8      # a layer check's default batch: one layer needs no article-sized batch


def build_parser():
    p = Parser(prog="gradcheck layer", description=(
        "Check one layer by itself (its forward vs JAX, its backward of a random upstream "
        "gradient vs JAX's VJP and finite differences, every element)."))
    p.add_argument("layer", metavar="LAYER", help="required, one of: " + "; ".join(
        f"{k} ({v.meaning})" for k, v in LAYER_SPECS.items()))
    p.add_argument("--forward", metavar="FILE.py[:FUNC]", help="the layer's forward (contract "
                   "in gradcheck.layer_check; FILE.py alone: its LAYER_forward); default: the "
                   "reference's own layer")
    p.add_argument("--backward", metavar="FILE.py[:FUNC]",
                   help="the layer's backward (required with --forward; FILE.py alone: its "
                        "LAYER_backward)")
    p.add_argument("--impl", metavar="FILE.py[:FORWARD,BACKWARD]",
                   help="the layer's two functions: FILE.py:FORWARD,BACKWARD or "
                        "MODULE:FORWARD,BACKWARD (FILE.py alone: its LAYER_forward and "
                        "LAYER_backward); with --adapter: the module (FILE.py or MODULE) of "
                        "code written in another shape")
    p.add_argument("--path", metavar="DIR", kind="folder",
                   help="with --impl or --forward/--backward: " + PATH_HELP.replace(
                       " (a private copy of its .py files, in the worker)", ""))
    p.add_argument("--adapter", metavar="STYLE|FILE.json|JSON", action="append",
                   help="how --impl's code is shaped (see README, Adapters); given again, "
                        "merged over the earlier (a .json file, then overrides). With the "
                        "layer's own two functions, the cell's conventions alone, e.g. "
                        "'{\"gate_order\": \"ifog\"}'. Code that starts c at zero (the course "
                        "style) is given c0 = 0; a dc0 the code cannot give is skipped (not "
                        "compared)")
    for option in _cell_options().values():
        p.add_argument(flag(option.name), action="store_true", help=(
            f"layers of the {option.cell} cell ({', '.join(option.layers)}): "
            + option.help.split(": ", 1)[-1]))
    p.add_argument("--interval", type=integer, default=3, metavar="T",
                   help="time steps of the layer's input (default 3)")
    for size in SIZES:
        default = LAYER_BATCH if size.option == "batch" else size.default
        p.add_argument(flag(size.option), type=integer, default=default, metavar=size.letter,
                       help=f"{size.meaning} (default {default})")
    p.add_argument("--loss", default=None,
                   help=f"the loss layer's loss: l2, ce or bce (default {DEFAULT_LOSS}, or "
                        "what the adapter's code computes)")
    p.add_argument("--activations", default=None, metavar="F1,F2,F3",
                   help=f"the layers' activations (default {','.join(DEFAULT_ACTIVATIONS)}, "
                        "or what the adapter's code computes)")
    p.add_argument("--reduction", default=DEFAULT_REDUCTION,
                   help=f"the loss layer's reduction: mean or sum (default {DEFAULT_REDUCTION})")
    p.add_argument("--dtype", default=DEFAULT_DTYPE,
                   help=f"float64 or float32, of the layer under test (default {DEFAULT_DTYPE})")
    p.add_argument("--seed", type=integer, default=0, metavar="N",
                   help="every random draw (default 0)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="also the table of every comparison (array, oracle)")
    return p


class _Option(NamedTuple):
    """A cell's option as a layer flag: the option's name, help, its cell and layers."""
    name: str
    help: str
    cell: str
    layers: tuple


def _cell_options():
    """{name: _Option} of the options of the cells that have layers here."""
    found = {}
    for spec in LAYER_SPECS.values():
        if spec.cell is None:
            continue
        for o in cell(spec.cell).options:
            layers = found[o.name].layers if o.name in found else ()
            found[o.name] = _Option(o.name, o.help, spec.cell, layers + (spec.name,))
    return found


# --impl without --adapter: the layer's own two functions
_IMPL_PAIR = ("expected FILE.py:FORWARD,BACKWARD or MODULE:FORWARD,BACKWARD (the layer's two "
              "functions), FILE.py alone (its LAYER_forward, LAYER_backward), or the module "
              "of code in another shape with --adapter")


def _pair(impl, layer):
    """(forward, backward) loaded from --impl's FILE.py:FORWARD,BACKWARD (or FILE.py)."""
    from ..untrusted import load_impl
    where, colon, funcs = impl.rpartition(":")
    if not colon and impl.endswith(".py"):
        where, funcs = impl, f"{layer}_forward,{layer}_backward"
    names = funcs.split(",")
    if not where or len(names) != 2 or not all(n.isidentifier() for n in names):
        raise BadUsage(f"--impl {impl}: {_IMPL_PAIR}")
    return tuple(load_impl(f"{where}:{n}") for n in names)


def _one(spec, side, layer):
    """--forward or --backward (``side``): FILE.py:FUNC or MODULE:FUNC loaded, a FILE.py
    alone naming its LAYER_forward or LAYER_backward (as --impl FILE.py does), never the
    whole window's loss_and_grads; a usage error names ``side``."""
    from ..untrusted import load_impl
    if ":" not in spec and spec.endswith(".py"):
        spec = f"{spec}:{spec_of(layer).name}_{side}"
    return load_impl(spec, side)


def body(args):
    from ..untrusted import load_impl, on_path
    forward = backward = adapter = None
    loss, acts = args.loss, args.activations
    conventions = None
    if args.adapter is not None:
        from ..adapters import conventions_only
        conventions = conventions_only(args.adapter, spec_of(args.layer).cell)
    if conventions is not None:         # the layer's own two functions, their conventions
        if args.impl is None and not (args.forward and args.backward):
            raise UsageError("adapter", " ".join(args.adapter), "of conventions alone needs "
                             "the layer's two functions (--impl or --forward/--backward)")
        adapter = conventions
    if args.adapter is not None and conventions is None:
        from ..adapters import load_module, read_declaration, supported
        if args.impl is None:
            raise UsageError("adapter", " ".join(args.adapter),
                             "needs --impl naming the code's module")
        adapter = read_declaration(args.adapter, spec_of(args.layer).cell)
        d_loss, d_acts, _ = supported(adapter)
        acts = acts or ",".join(d_acts)
        loss = loss or d_loss
        forward = args.impl
        if args.path is not None:    # loaded now, its package on the path only meanwhile
            with on_path(args.path):
                forward = load_module(args.impl, adapter)
    elif args.impl is not None:
        if args.forward or args.backward:
            raise BadUsage(f"--impl {args.impl}: names the layer's two functions already; "
                           f"give it or --forward/--backward, not both")
        with on_path(args.path):
            forward, backward = _pair(args.impl, spec_of(args.layer).name)
    elif args.forward or args.backward:
        if not (args.forward and args.backward):
            given, missing = ("forward", "backward") if args.forward else ("backward", "forward")
            raise BadUsage(f"--{given} needs --{missing}: a layer is checked as the pair")
        with on_path(args.path):
            forward, backward = (_one(getattr(args, side), side, args.layer)
                                 for side in ("forward", "backward"))
    elif args.path is not None:
        raise BadUsage("--path needs --impl or --forward/--backward: it is where their own "
                       "package is found")
    report = check_layer(
        args.layer, forward, backward, interval=args.interval, batch=args.batch,
        input_size=args.input_size, hidden_size=args.hidden_size,
        state_size=args.state_size, output_size=args.output_size, loss=loss or DEFAULT_LOSS,
        activations=acts or ",".join(DEFAULT_ACTIVATIONS), reduction=args.reduction,
        dtype=args.dtype, seed=args.seed, adapter=adapter,
        **{n: True for n in _cell_options() if getattr(args, n)})
    code = ExitCode.OK if report.passed else ExitCode.FAILED
    return Outcome(code, text=answer(report, verbose=args.verbose), document=report.to_dict())


def main(argv=None):
    """Check one layer; exit 0 agree, 1 verdict, 2 usage."""
    return run("gradcheck layer", build_parser, body, argv)
