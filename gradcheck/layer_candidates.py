"""The RNN's own layer mistakes (its cell's "layer_zoo" side): candidate mistakes of the
rnn_step and rnn layers, each tested against a layer check's numbers, named only when it
reproduces them (the whole window's candidates, candidates.py, written for one layer).
A cell's zoo answers the same call, ``layer_candidate``, for its own layers."""
import numpy as np

from ._reference import reference
from .compare import compare

__all__ = ["layer_candidate"]


def layer_candidate(spec, arrays, gs, grads, want, failing, options, tol):
    """(kind, sentence, first_step, flaw) of the one candidate mistake that reproduces
    the layer's gradients, or None. ``spec``: the LayerSpec (rnn_step or rnn); ``arrays``
    its inputs, ``gs`` the upstream gradients, ``grads`` the code's gradients, ``want``
    JAX's, ``failing`` the names that disagree; ``first_step``: the error is the window's
    first step's alone."""
    if len(grads) != 5:
        return None
    if spec.name == "rnn" and failing == {"U"}:
        from .layer_oracles import jax_per_step
        per_step, states = jax_per_step(options, arrays, gs[0])
        found = _dU_candidate(grads[3], want[3], per_step["d2"], states, tol)
        if found is not None:
            return found
    return _rnn_candidate(spec.name, arrays, gs[0], grads, options["activations"][1], tol)


# dU candidates of the rnn layer, from JAX's states h [T+1, B, R] and d2 = dL/dz2 [T, B, R]:
# (flaw, sentence, whether the error is the first step's alone, diagnosis kind, dU it gives)
_DU_CANDIDATES = (
    ("dU_first_from_last_state",
     "dU's term of the window's first step is built from the LAST state h_T (h[t-1] at "
     "t = 0 wraps to index -1) instead of h0; the error is in step 1 alone",
     True, "dU_first_step", lambda dU, h, d2: dU - h[0].T @ d2[0] + h[-1].T @ d2[0]),
    ("dU_first_from_h1",
     "dU's term of the window's first step is built from h_1 (the step's output) instead "
     "of h0; the error is in step 1 alone", True, "dU_first_step",
     lambda dU, h, d2: dU - h[0].T @ d2[0] + h[1].T @ d2[0]),
    ("dU_skips_first_step",
     "dU's term of the window's first step is left out (h0 taken as zero); the error is in "
     "step 1 alone", True, "dU_first_step", lambda dU, h, d2: dU - h[0].T @ d2[0]),
    ("dU_from_h_t", "dU is built from h_t instead of h_{t-1} (dU += h_t^T d2_t)", False,
     "dU_from_h_t", lambda dU, h, d2: np.einsum("tbi,tbj->ij", h[1:], d2)),
    ("dU_transposed", "dU is transposed (d2^T h for h^T d2)", False, "transposed",
     lambda dU, h, d2: dU.T),
)


def _dU_candidate(got, dU, d2, states, tol):
    """(kind, sentence, first_step, flaw) of the one candidate whose dU matches ``got``,
    or None."""
    found = [(kind, what, first, flaw) for flaw, what, first, kind, fn in _DU_CANDIDATES
             if compare(got, fn(dU, states, d2), tol).passed]
    return found[0] if len(found) == 1 else None


def _rnn_candidate(layer, arrays, g, grads, activation, tol):
    """(kind, sentence, False, flaw) when the rnn layer's backward never adds the state
    derivative from the future, or the rnn step's sends dh_prev through U instead of
    U^T (candidates.py's flaws, written for one layer), every gradient reproduced."""
    from .candidates import CANDIDATES
    a, h0, W2, U, b2 = (np.asarray(v, np.float64) for v in arrays)
    g = np.asarray(g, np.float64)
    step = reference.layers.rnn_step_forward
    if layer == "rnn_step":
        _, (_, _, _, _, df2) = step(a, h0, W2, U, b2, activation)
        d2 = g * df2                                          # [B, R]
        flaw, want = "dh_next_U_untransposed", (d2 @ W2.T, d2 @ U, a.T @ d2, h0.T @ d2,
                                                d2.sum(axis=0))
    else:
        h_prev, d2 = [h0], []
        for t in range(a.shape[0]):
            h_t, (_, _, _, _, df2) = step(a[t], h_prev[-1], W2, U, b2, activation)
            h_prev.append(h_t)
            d2.append(g[t] * df2)                             # [B, R], no dh_next added
        d2, hp = np.stack(d2), np.stack(h_prev[:-1])          # [T, B, R] each
        flaw, want = "no_dh_next", (d2 @ W2.T, d2[0] @ U.T, np.einsum("tbh,tbr->hr", a, d2),
                                    np.einsum("tbi,tbj->ij", hp, d2), d2.sum(axis=(0, 1)))
    if not all(compare(got, w, tol).passed for got, w in zip(grads, want)):
        return None
    c = CANDIDATES[flaw]
    return c.kind, c.what, False, flaw
