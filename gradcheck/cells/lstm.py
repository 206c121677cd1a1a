"""The LSTM cell, declared: its arrays, its second state (c), its contract.

    zg_t = a_t Wx + h_{t-1} Wh + b      blocks i, f, g, o of R each    [B, 4R]
    c_t = s(zf) * c_{t-1} + s(zi) * tanh(zg)     h_t = s(zo) * tanh(c_t)

Plain data (no NumPy): the command line reads it for --help.
"""
from .bugs import declare_bugs
from .conventions import declare_conventions
from ..model import Array, Cell, LayerSpec, register_cell

__all__ = ["LSTM", "GATES", "BUGS", "CONVENTIONS"]

GATES = "ifgo"                       # the order of the four blocks of Wx, Wh and b

BUGS = declare_bugs(
    "lstm",
    ("no_dc_next", "the cell state's derivative from the future, dc_next, is never "
        "carried back (dc_t = dh_t * o * tanh'(c_t) alone)", "dc_next not carried",
        "The cell state's derivative does not flow back through time."),
    ("no_dh_next", "the hidden state's derivative from the future, dh_next, is never added "
        "to dh_t", "dh_next not passed (LSTM)",
        "The hidden state's derivative does not flow back through time."),
    ("forget_grad_with_c_t", "the forget gate's derivative is taken with c_t instead of "
        "c_{t-1} (df = dc * c_t)", "forget gate with c_t",
        "The forget gate's gradient uses the wrong cell state."),
    ("no_tanh_prime_c", "the tanh'(c_t) factor is missing on the path from h to c "
        "(dc = dh * o + dc_next)", "tanh'(c) missing",
        "The derivative from h to c misses a factor."),
    ("gate_order_backward", "the gate blocks are sliced in a different order in the "
        "backward (i, f, o, g) than in the forward (i, f, g, o)", "gate order in backward",
        "Your backward pass puts the gates' gradients in a different order than the forward."),
    ("o_grad_with_c", "the output gate's derivative uses c_t instead of tanh(c_t) "
        "(do = dh * c_t)", "output gate with c_t",
        "The output gate's gradient uses the wrong value."),
    ("dc_next_without_f", "dc_next is passed back without the forget gate "
        "(dc_next = dc instead of dc * f)", "dc_next misses f",
        "The cell state's derivative passed back misses a factor."),
    ("g_grad_sigmoid", "the candidate g's derivative uses the sigmoid's g(1-g) instead of "
        "tanh's 1 - g^2", "g derivative as a sigmoid's",
        "The candidate's derivative is that of the wrong nonlinearity."),
    ("dWh_from_h_t", "dWh is built from h_t instead of h_{t-1} (dWh += h_t^T dzg)",
        "dWh from the wrong state", "A recurrent weight's gradient uses the wrong state."),
    ("tanh_prime_of_h", "tanh'(c_t) is computed from h_t (1 - h_t^2) instead of "
        "tanh(c_t)", "tanh'(c) from h", "The derivative of tanh(c) uses the wrong value."),
    ("dc0_zeros", "dc0 is returned as zeros: after step 1 the accumulator dc_next is dc0",
        "dc0 not returned", "The initial cell state's gradient is not returned."),
    ("i_f_swapped", "the input and forget gates' factors are swapped in the backward "
        "(di = dc * c_{t-1}, df = dc * g)", "input and forget gate swapped",
        "Two gates' gradients are swapped."),
    ("dc_without_o", "the path from h to c misses the output gate "
        "(dc = dh * tanh'(c_t) + dc_next)", "o missing on h -> c",
        "The derivative from h to c misses a factor."),
)

_WEIGHTS = (Array("Wx", "HR", "param", fan_in="H", blocks=4),
            Array("Wh", "RR", "param", fan_in="R", blocks=4),
            Array("b", "R", "param", blocks=4))

# The layer checks' contracts (gradcheck layer lstm_step|lstm); the argument names are
# stable (adapters map other styles onto them):
#   h_t, c_t, cache = lstm_step_forward(a_t, h_prev, c_prev, Wx, Wh, b)
#   da_t, dh_prev, dc_prev, dWx, dWh, db = lstm_step_backward(dh_t, dc_t, cache)
#   h, cache = lstm_forward(a, h0, c0, Wx, Wh, b)          (c_last is not returned)
#   da, dh0, dc0, dWx, dWh, db = lstm_backward(dh, cache)
LAYERS = (
    LayerSpec("lstm_step", (Array("a_t", "BH", "input"), Array("h_prev", "BR", "state"),
                            Array("c_prev", "BR", "state")) + _WEIGHTS,
              (Array("h_t", "BR", "state"), Array("c_t", "BR", "state")), None,
              "one LSTM step: zg = a_t Wx + h_prev Wh + b (blocks i, f, g, o), "
              "c_t = f*c_prev + i*g, h_t = o*tanh(c_t)", "lstm"),
    LayerSpec("lstm", (Array("a", "TBH", "input"), Array("h0", "BR", "state"),
                       Array("c0", "BR", "state")) + _WEIGHTS,
              (Array("h", "TBR", "state"),), None,
              "the LSTM over a window of T steps from h0, c0 (returns every h_t)", "lstm",
              step="lstm_step"),
)

CONVENTIONS = declare_conventions(
    "lstm",
    ("gate_order", {"ifgo": "gate order i, f, g, o", "ifog": "gate order i, f, o, g",
                    "fgio": "gate order f, g, i, o", "igfo": "gate order i, g, f, o",
                    "iofg": "gate order i, o, f, g"}, "order",
     "Your forward slices the four gate blocks in another order than the one checked."),
    ("cell_state", {"carried": "the cell state carried in (c0) and out (c_last)",
                    "reset": "a cell state that starts at zero in every call"}, "zero c0",
     "Your forward starts the cell state differently than the one checked."),
)

LSTM = register_cell(Cell(
    "lstm",
    arrays=_WEIGHTS,
    states=(("h0", "h_last"), ("c0", "c_last")),
    equations="LSTM: zg = a Wx + h_{t-1} Wh + b (blocks i, f, g, o), c = f*c_{t-1} + i*g, "
              "h = o*tanh(c)",
    contract="loss_and_grads(params, x, y, h0, c0, *, loss, activations, reduction) -> "
             "(loss, grads, h_last, c_last)",
    fixed_f2="the LSTM's own nonlinearities are the standard ones (sigmoid gates, tanh)",
    kinds=tuple(b.kind for b in BUGS.values()) + tuple(c.kind for c in CONVENTIONS.values()),
    conventions=CONVENTIONS,
    sides={"reference": "lstm", "jax": "gradcheck.cells.lstm_jax",
           "fd": "gradcheck.cells.lstm_fd", "zoo": "gradcheck.cells.lstm_zoo",
           "layer_reference": "lstm", "layer_jax": "gradcheck.cells.lstm_layers",
           "layer_zoo": "gradcheck.cells.lstm_zoo"},
    layers=LAYERS,
    label="LSTM"))
