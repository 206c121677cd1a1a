"""A char-RNN written as a class: the model built from its sizes (it makes its own
weights), the weights as attributes, the loss and its gradients a method,
``RNN(hidden_size, vocab_size).loss_fun(inputs, targets, hprev)``. Written here; no clipping.
"""
import numpy as np


class RNN:
    def __init__(self, hidden_size, vocab_size, seed=0):
        rng = np.random.default_rng(seed)
        self.Wxh = rng.normal(0.0, 0.01, (hidden_size, vocab_size))
        self.Whh = rng.normal(0.0, 0.01, (hidden_size, hidden_size))
        self.Why = rng.normal(0.0, 0.01, (vocab_size, hidden_size))
        self.bh, self.by = np.zeros((hidden_size, 1)), np.zeros((vocab_size, 1))

    def loss_fun(self, inputs, targets, hprev):
        """inputs, targets: lists of ids; hprev [H, 1] -> loss, dWxh, dWhh, dWhy, dbh, dby, h."""
        xs, hs, ps, loss = {}, {-1: np.copy(hprev)}, {}, 0.0
        for t, i in enumerate(inputs):
            xs[t] = np.zeros((self.Wxh.shape[1], 1))
            xs[t][i] = 1.0
            hs[t] = np.tanh(self.Wxh @ xs[t] + self.Whh @ hs[t - 1] + self.bh)
            ys = self.Why @ hs[t] + self.by
            e = np.exp(ys - ys.max())
            ps[t] = e / e.sum()
            loss += -np.log(ps[t][targets[t], 0])
        dWxh, dWhh, dWhy = (np.zeros_like(w) for w in (self.Wxh, self.Whh, self.Why))
        dbh, dby, dhnext = np.zeros_like(self.bh), np.zeros_like(self.by), np.zeros_like(hprev)
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1.0
            dWhy += dy @ hs[t].T
            dby += dy
            dz = (1.0 - hs[t] ** 2) * (self.Why.T @ dy + dhnext)
            dbh += dz
            dWxh += dz @ xs[t].T
            dWhh += dz @ hs[t - 1].T
            dhnext = self.Whh.T @ dz
        return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]
