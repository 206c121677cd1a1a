"""The GRU cell, declared: its arrays, its option --reset-after (with bh), its zoo's kinds.

    r = s(x Wx_r + h_{t-1} Wh_r + b_r)      z likewise      (blocks r, z, n of R each)
    n = tanh(x Wx_n + (r*h_{t-1}) Wh_n + b_n)               (reset before, the default)
    n = tanh(x Wx_n + b_n + r*(h_{t-1} Wh_n + bh_n))        (--reset-after; bh in r, z too)
    h_t = (1-z)*n + z*h_{t-1}

Plain data (no NumPy): the command line reads it for --help.
"""
from .bugs import declare_bugs
from .conventions import declare_conventions
from ..model import Array, Cell, CellOption, LayerSpec, register_cell

__all__ = ["GRU", "GATES", "BUGS", "CONVENTIONS"]

GATES = "rzn"                        # the order of the three blocks of Wx, Wh, b and bh
AFTER = ("reset_after",)             # the options of the form a reset-after mistake is of

BUGS = declare_bugs(
    "gru",
    ("z_swapped", "z and 1 - z are swapped in the backward (dn = dh * z, and dh * (1 - z) "
        "to h_{t-1}), as for h = z*n + (1-z)*h_{t-1}", "z and 1-z swapped",
        "The update gate's two sides are swapped in your backward pass."),
    ("no_direct_path", "the direct path z * dh to h_{t-1} is missing from dh_next",
        "z*dh path missing", "Part of the state's derivative does not reach the previous step."),
    ("no_dh_next", "the state derivative from the future, dh_next, is never added to dh_t",
        "dh_next not passed (GRU)", "The state's derivative does not flow back through time."),
    ("reset_after_in_backward", "dWh_n is built from h_{t-1} instead of r * h_{t-1}: the "
        "backward applies the reset gate after the product while the forward (and the check) "
        "apply it before", "reset gate after, expected before",
        "Your backward pass places the reset gate differently than the forward."),
    ("dz_sign", "the update gate's derivative has the wrong sign (dz = dh * (n - h_{t-1}))",
        "update gate sign", "The update gate's gradient has the wrong sign."),
    ("n_grad_sigmoid", "n's derivative uses the sigmoid's n(1-n) instead of tanh's 1 - n^2",
        "n derivative as a sigmoid's",
        "The candidate's derivative is that of the wrong nonlinearity."),
    ("dr_without_h_prev", "the reset gate's derivative misses h_{t-1} (dr = d(r*h) alone)",
        "reset gate misses h_{t-1}", "The reset gate's gradient misses a factor."),
    ("no_reset_path", "the path back through r * h_{t-1} to h_{t-1} is missing from dh_next",
        "r*h path missing", "Part of the state's derivative does not reach the previous step."),
    ("dWh_from_h_t", "dWh's r and z blocks are built from h_t instead of h_{t-1}",
        "dWh from the wrong state (GRU)", "A recurrent weight's gradient uses the wrong state."),
    ("gate_order_backward", "the gate blocks are placed in the order z, r, n in the "
        "backward but r, z, n in the forward", "gate order in backward (GRU)",
        "Your backward pass puts the gates' gradients in a different order than the forward."),
    ("tanh_prime_of_h", "tanh'(.) of n is computed from h_t (1 - h_t^2) instead of n",
        "tanh' from h (GRU)", "The derivative of the candidate uses the wrong value."),
    # the reset after the product (--reset-after): n = tanh(zx_n + r * (h_{t-1} Wh_n + bh_n))
    ("after_dbh_n_without_r", "dbh_n is not multiplied by r (dbh_n = dzn), though bh_n "
        "sits inside the reset, r * (h_{t-1} Wh_n + bh_n)", "dbh_n misses r",
        "The recurrent bias's gradient misses a factor.", AFTER),
    ("after_dbh_n_missing", "bh_n's gradient is left at zero, as if bh were the r and z "
        "blocks' bias only", "dbh_n missing", "Part of the recurrent bias's gradient is "
        "missing.", AFTER),
    ("after_dWh_n_without_r", "dWh_n misses the reset gate (dWh_n = h_{t-1}^T dzn instead "
        "of h_{t-1}^T (r * dzn))", "dWh_n misses r",
        "A recurrent weight's gradient misses a factor.", AFTER),
    ("after_dr_without_bh", "the reset gate's derivative leaves bh_n out of what r "
        "multiplies (dr = dzn * h_{t-1} Wh_n)", "dr without bh_n",
        "The reset gate's gradient uses the wrong value.", AFTER),
    ("after_dr_as_before", "the reset gate's derivative is the reset-before one "
        "(dr = (dzn Wh_n^T) * h_{t-1}) while the forward (and the check) reset after the "
        "product", "reset gate before, expected after",
        "Your backward pass places the reset gate differently than the forward.", AFTER),
    ("after_no_reset_path", "the path back through r * (h_{t-1} Wh_n) to h_{t-1} is missing "
        "from dh_next", "r*(h Wh_n) path missing (reset after)",
        "Part of the state's derivative does not reach the previous step.", AFTER),
    ("after_n_path_without_r", "the path back through n to h_{t-1} misses r "
        "(dzn Wh_n^T instead of (r * dzn) Wh_n^T)", "n path misses r (reset after)",
        "Part of the state's derivative misses a factor.", AFTER),
)

_WEIGHTS = (Array("Wx", "HR", "param", fan_in="H", blocks=3),
            Array("Wh", "RR", "param", fan_in="R", blocks=3),
            Array("b", "R", "param", blocks=3))

# The layer checks' contracts (gradcheck layer gru_step|gru [--reset-after]); the argument
# names are stable (adapters map other styles onto them); with --reset-after, bh [3R]
# comes last among the inputs and its gradient last among the grads:
#   h_t, cache = gru_step_forward(a_t, h_prev, Wx, Wh, b[, bh])
#   da_t, dh_prev, dWx, dWh, db[, dbh] = gru_step_backward(dh_t, cache)
#   h, cache = gru_forward(a, h0, Wx, Wh, b[, bh])
#   da, dh0, dWx, dWh, db[, dbh] = gru_backward(dh, cache)
LAYERS = (
    LayerSpec("gru_step", (Array("a_t", "BH", "input"), Array("h_prev", "BR", "state"))
              + _WEIGHTS, (Array("h_t", "BR", "state"),), None,
              "one GRU step: r, z = s(a_t Wx + h_prev Wh + b) (blocks r, z, n), n = tanh(a_t "
              "Wx_n + (r*h_prev) Wh_n + b_n), h_t = (1-z)*n + z*h_prev", "gru"),
    LayerSpec("gru", (Array("a", "TBH", "input"), Array("h0", "BR", "state")) + _WEIGHTS,
              (Array("h", "TBR", "state"),), None,
              "the GRU over a window of T steps from h0 (returns every h_t)", "gru",
              step="gru_step"),
)

CONVENTIONS = declare_conventions(
    "gru",
    ("gate_order", {"rzn": "gate blocks r, z, n", "zrn": "gate blocks z, r, n"}, "order",
     "Your forward slices the gate blocks in another order than the one checked."),
    ("update", {"z_keeps": "h = (1-z)*n + z*h_prev (z weighs the previous state)",
                "z_takes": "h = (1-z)*h_prev + z*n (z weighs the candidate n)"}, "negate z",
     "Your forward weighs the previous state and the candidate the other way round."),
    ("reset", {"before": "the reset gate before the recurrent product, "
                         "n = tanh(a Wx_n + (r*h_prev) Wh_n + b_n)",
               "after": "the reset gate after the recurrent product, "
                        "n = tanh(a Wx_n + b_n + r*(h_prev Wh_n))"}, "option reset_after",
     "Your forward applies the reset gate on the other side of the recurrent product."),
)

GRU = register_cell(Cell(
    "gru",
    arrays=_WEIGHTS,
    states=(("h0", "h_last"),),
    equations="GRU: r, z = s(a Wx + h_{t-1} Wh + b) (blocks r, z), n = tanh(a Wx_n + "
              "(r*h_{t-1}) Wh_n + b_n), h = (1-z)*n + z*h_{t-1}",
    contract="loss_and_grads(params, x, y, h0, *, loss, activations, reduction) -> "
             "(loss, grads, h_last)",
    fixed_f2="the GRU's own nonlinearities are the standard ones (sigmoid gates, tanh)",
    options=(CellOption("reset_after", "--cell gru: the reset gate after the recurrent product, "
                        "n = tanh(a Wx_n + b_n + r*(h Wh_n + bh_n)), with a second bias bh [3R] "
                        "in params (as in the frameworks)",
                        arrays=(Array("bh", "R", "param", blocks=3),)),),
    kinds=tuple(b.kind for b in BUGS.values()) + tuple(c.kind for c in CONVENTIONS.values()),
    conventions=CONVENTIONS,
    sides={"reference": "gru", "jax": "gradcheck.cells.gru_jax", "fd": "gradcheck.cells.gru_fd",
           "zoo": "gradcheck.cells.gru_zoo", "layer_reference": "gru",
           "layer_jax": "gradcheck.cells.gru_layers", "layer_zoo": "gradcheck.cells.gru_zoo"},
    layers=LAYERS,
    label="GRU"))
