"""The checks the gated cells' references (lstm.py, gru.py) make of their inputs: the
options by name, every parameter present, and shapes that fit the cell's gate blocks."""
from .activations import ACTIVATIONS
from .losses import LOSSES
from .network import ReferenceInputError

__all__ = ["validate"]


def validate(params, x, states, loss, activations, reduction, param_names, blocks):
    """Raise ReferenceInputError naming the first input that does not fit. ``states``:
    {name: array} of the incoming states, each [B, R]; ``blocks``: the gate blocks of Wx,
    Wh and b (and of bh, where params hold it)."""
    if loss not in LOSSES:
        raise ReferenceInputError(f"loss={loss!r}; expected one of {', '.join(LOSSES)}")
    if reduction not in ("mean", "sum"):
        raise ReferenceInputError(f"reduction={reduction!r}; expected mean or sum")
    if (not isinstance(activations, (tuple, list)) or len(activations) != 3
            or any(a not in ACTIVATIONS for a in activations)):
        raise ReferenceInputError(
            f"activations={activations!r}; expected three of {', '.join(ACTIVATIONS)}")
    missing = [n for n in param_names if n not in params]
    if missing:
        raise ReferenceInputError(f"params is missing {', '.join(missing)}")
    T, B, I = x.shape
    H, RK = params["Wx"].shape
    R = RK // blocks
    want = {"W1": (I, H), "b1": (H,), "Wx": (H, blocks * R), "Wh": (R, blocks * R),
            "b": (blocks * R,), "W3": (R, params["b3"].shape[0])}
    if "bh" in params:
        want["bh"] = (blocks * R,)
    for name, shape in want.items():
        if params[name].shape != shape:
            raise ReferenceInputError(f"{name} has shape {params[name].shape}; expected {shape}")
    for name, state in states.items():
        if state.shape != (B, R):
            raise ReferenceInputError(f"{name} has shape {state.shape}; expected {(B, R)}")
