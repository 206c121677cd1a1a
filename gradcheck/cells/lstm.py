"""The LSTM cell, declared: its arrays, its second state (c), its contract.

    zg_t = a_t Wx + h_{t-1} Wh + b      blocks i, f, g, o of R each    [B, 4R]
    c_t = s(zf) * c_{t-1} + s(zi) * tanh(zg)     h_t = s(zo) * tanh(c_t)

Plain data (no NumPy): the command line reads it for --help.
"""
from ..model import Array, Cell, register_cell

__all__ = ["LSTM", "GATES"]

GATES = "ifgo"                       # the order of the four blocks of Wx, Wh and b

LSTM = register_cell(Cell(
    "lstm",
    arrays=(Array("Wx", "HR", "param", fan_in="H", blocks=4),
            Array("Wh", "RR", "param", fan_in="R", blocks=4),
            Array("b", "R", "param", blocks=4)),
    states=(("h0", "h_last"), ("c0", "c_last")),
    equations="LSTM: zg = a Wx + h_{t-1} Wh + b (blocks i, f, g, o), c = f*c_{t-1} + i*g, "
              "h = o*tanh(c)",
    contract="loss_and_grads(params, x, y, h0, c0, *, loss, activations, reduction) -> "
             "(loss, grads, h_last, c_last)",
    fixed_f2="the LSTM's own nonlinearities are the standard ones (sigmoid gates, tanh)",
    sides={"reference": "lstm", "jax": "gradcheck.cells.lstm_jax",
           "fd": "gradcheck.cells.lstm_fd"}))
