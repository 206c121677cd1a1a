"""gradcheck against torch.autograd.gradcheck on the same model and tensors, in one process.

Needs torch (not a dependency of gradcheck): ``pip install torch`` then
``python bench/torch_compare.py`` (add ``--quick`` to skip the slow mid-config torch run).
Prints the four ratios the performance targets are stated in.
"""
import argparse
import sys
import time

import numpy as np
import torch

import gradcheck
from gradcheck.bench import ARTICLE, LARGE, MID, median_seconds
from gradcheck.config import make_config
from gradcheck.data import make_data

NAMES = ("W1", "b1", "W2", "U", "b2", "W3", "b3")


def _torch_window(W1, b1, W2, U, b2, W3, b3, x, h0, y):
    """The same window (l2, tanh, tanh, identity, mean) in torch."""
    h, total = h0, 0.0
    for t in range(x.shape[0]):
        a = torch.tanh(x[t] @ W1 + b1)
        h = torch.tanh(a @ W2 + h @ U + b2)
        total = total + 0.5 * ((h @ W3 + b3 - y[t]) ** 2).sum()
    return total / x.shape[1]


def _tensors(options):
    data = make_data(make_config(**options))

    def t(a, grad=True):
        return torch.tensor(np.asarray(a, np.float64), requires_grad=grad)
    inputs = [t(data.params[n]) for n in NAMES] + [t(data.x), t(data.h0)]
    return inputs, t(data.y, grad=False)


def _torch_gradcheck(options, fast):
    inputs, y = _tensors(options)

    def run():
        torch.autograd.gradcheck(lambda *a: _torch_window(*a, y), inputs, fast_mode=fast,
                                 raise_exception=False)
    return run, sum(i.numel() for i in inputs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the mid-config torch run")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    rows = []

    run, n = _torch_gradcheck(ARTICLE, fast=False)
    torch_s = median_seconds(run, 1)
    ours = median_seconds(lambda: gradcheck.check(**ARTICLE), 5)
    rows.append(("article full check (5,430 elements)", ours, torch_s, "slow", 0.02))

    if not args.quick:
        run, n = _torch_gradcheck(MID, fast=False)
        torch_s = time.perf_counter()
        run()
        torch_s = time.perf_counter() - torch_s
        ours = median_seconds(lambda: gradcheck.check(**MID), 2)
        rows.append((f"mid full check, per element ({n:,})", ours / n, torch_s / n, "slow", 0.05))

    run, n = _torch_gradcheck(LARGE, fast=True)
    torch_s = median_seconds(run, 5)
    ours = median_seconds(lambda: gradcheck.check(**LARGE, mode="projections"), 5)
    rows.append(("large --mode projections", ours, torch_s, "fast", 2.0))

    print(f"{'figure':42s} {'gradcheck':>12s} {'torch':>12s} {'ratio':>8s} {'target':>8s}")
    for name, ours, theirs, mode, target in rows:
        ratio = ours / theirs
        print(f"{name:42s} {ours:12.4g} {theirs:12.4g} {ratio:8.3f} {'<= ' + str(target):>8s}"
              f"  (torch {mode} mode, seconds){'' if ratio <= target else '  MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
