"""One loss function, minimal char-RNN style: one-hot ids, batch 1, column vectors,
weights read from module globals, gradients clipped inside. Written here.
``CLIP`` (a module global) is the clipping bound; the tests lower it to inject the bug.
"""
import numpy as np

CLIP = 5.0
Wxh = Whh = Why = bh = by = None        # set by whoever trains (or checks) it


def lossFun(inputs, targets, hprev):
    """inputs, targets: lists of ids; hprev [H, 1] -> loss, dWxh, dWhh, dWhy, dbh, dby, h."""
    xs, hs, ps = {}, {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t, i in enumerate(inputs):
        xs[t] = np.zeros((Wxh.shape[1], 1))
        xs[t][i] = 1.0
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        ys = Why @ hs[t] + by
        e = np.exp(ys - ys.max())
        ps[t] = e / e.sum()
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1.0
        dWhy += dy @ hs[t].T
        dby += dy
        dh = Why.T @ dy + dhnext
        dz = (1.0 - hs[t] ** 2) * dh
        dbh += dz
        dWxh += dz @ xs[t].T
        dWhh += dz @ hs[t - 1].T
        dhnext = Whh.T @ dz
    for d in (dWxh, dWhh, dWhy, dbh, dby):
        np.clip(d, -CLIP, CLIP, out=d)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]
