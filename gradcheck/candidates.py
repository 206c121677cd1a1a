"""Candidate mistakes, each tested against the numbers before a diagnosis names it.

A candidate is a wrong BPTT window written out (one switch of ``zoo.Flaws``, the zoo's
article-style implementation with that one mistake), run in float64 on the failing
window's own inputs. It *reproduces* an implementation when every one of its nine
gradients agrees with the implementation's at the check's JAX tolerance. A diagnosis
names a candidate only when it reproduces the numbers; when several do, it names them
as alternatives; when none does, the diagnosis says the cause is unclear rather than
guessing from the pattern alone.
"""
from typing import NamedTuple

import numpy as np

from .compare import compare
from .model import GRAD_NAMES

__all__ = ["Candidate", "CANDIDATES", "reproducing", "clipped_at"]


class Candidate(NamedTuple):
    what: str           # the mistake, in a sentence
    first_step: bool    # its error is tied to the window's first step (that step alone)
    kind: str           # the diagnosis kind (kinds.py) it is an instance of


_KIND = {"dU_first_from_last_state": "dU_first_step", "dU_first_from_h1": "dU_first_step",
         "dU_skips_first_step": "dU_first_step", "dU_from_h_t": "dU_from_h_t",
         "dU_transposed": "transposed", "dh_next_U_untransposed": "dh_next_through_U",
         "no_dh_next": "dh_next_not_passed", "dh_next_overwrites": "dh_next_not_passed",
         "f1_grad_forgotten": "f1_derivative", "dW3_uses_h_prev": "dW3_from_h_prev",
         "tanh_grad_of_output": "f2_derivative", "dh_next_skips_f2_grad": "dh_next_skips_f2",
         "dx_skips_f1_grad": "dx_skips_f1"}

# flaw name -> (what it is, in a sentence; whether its error is tied to the window's
# first step, so that it belongs to that step alone)
_WHAT = {
    "dU_first_from_last_state": (
        "dU's term of the window's first step is built from the wrong state: h[t-1] at "
        "t = 0 reads the LAST state h_T (index -1) instead of h0", True),
    "dU_first_from_h1": (
        "dU's term of the window's first step is built from the wrong state: h_1, the "
        "step's output, instead of h0", True),
    "dU_skips_first_step": (
        "dU misses step 1's term h0^T d2_1 (left out, as if h0 were zero; invisible when "
        "the incoming state is zero)", True),
    "dU_from_h_t": ("dU is built from h_t instead of h_{t-1} (dU += h_t^T d2_t)", False),
    "dU_transposed": ("dU is transposed (d2^T h written for h^T d2; U is square)", False),
    "dh_next_U_untransposed": (
        "the state's derivative goes back through U instead of U^T (dh_next = d2 U: a "
        "transposed U in the state's derivative)", False),
    "no_dh_next": ("the state derivative from the future, dh_next, is never added to dh_t",
                   False),
    "dh_next_overwrites": ("dh_next replaces d3_t W3^T in dh_t instead of being added to it",
                           False),
    "f1_grad_forgotten": ("the first layer's backward misses f1'(z1) (d1 = da)", False),
    "dW3_uses_h_prev": ("dW3 is built from h_{t-1} instead of h_t", False),
    "dh_next_skips_f2_grad": (
        "the state's derivative is passed back without f2': dh_next = dh_t U^T instead of "
        "d2_t U^T (d2_t = dh_t * f2'(z2_t))", False),
    "dx_skips_f1_grad": ("dx misses f1'(z1): it is built from da instead of d1 = da * "
                         "f1'(z1) (dW1 and db1 have it)", False),
    "tanh_grad_of_output": ("tanh' is taken of the output (1 - tanh(h)^2 with h = tanh(z))",
                            False),
}
CANDIDATES = {flaw: Candidate(what, first, _KIND[flaw]) for flaw, (what, first) in _WHAT.items()}


def reproducing(params, x, y, h0, impl_grads, options, tol):
    """{flaw: worst error / tol} of the candidates whose nine gradients all agree with
    ``impl_grads`` at ``tol`` (how closely each reproduces the numbers, <= 1)."""
    from .zoo import ArticleBPTT, Flaws
    params64 = {n: np.asarray(p, np.float64) for n, p in params.items()}
    x64, h064 = np.asarray(x, np.float64), np.asarray(h0, np.float64)
    y = y if y.dtype.kind in "iu" else np.asarray(y, np.float64)
    names = [n for n in GRAD_NAMES if n in impl_grads]
    found = {}
    for flaw in CANDIDATES:
        try:
            _, grads, _ = ArticleBPTT(Flaws(**{flaw: True}))(params64, x64, y, h064, **options)
        except (ValueError, FloatingPointError):
            continue
        fits = [compare(impl_grads[n], grads[n], tol) for n in names]
        if all(c.passed for c in fits):
            found[flaw] = max(c.ratio or 0.0 for c in fits)
    return found


def clipped_at(impl, oracle, tol):
    """c when ``impl`` is ``oracle`` clipped to [-c, c] (some element beyond c), else None."""
    impl, oracle = np.asarray(impl, np.float64), np.asarray(oracle, np.float64)
    c = float(np.max(np.abs(impl), initial=0.0))
    if c == 0 or not np.any(np.abs(oracle) > c * (1 + 1e-6)):
        return None
    return c if compare(impl, np.clip(oracle, -c, c), tol).passed else None
