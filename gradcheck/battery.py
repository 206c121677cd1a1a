"""A ready battery of configurations to check a user's implementation with.

``BATTERY`` maps a name (the test's id in ``pytest --gradcheck-impl``, the configuration's
name in ``gradcheck regression --impl``) to keyword arguments of ``gradcheck.check``.
Plain data: importing this module imports nothing else (the pytest plugin reads it at
collection time). Between them the configurations cover every loss, every activation,
both reductions and dtypes, several windows with a short last one (the state carried
from window to window by the implementation itself), one step per window, a long window,
batch 1 and every size 1. Every check starts its first window from a random, non-zero
h0, so the ``h0^T d2`` term of dU and the returned dh0 are exercised everywhere.
"""
__all__ = ["BATTERY", "SMALL"]

# Small sizes (B, I, H, R, O) for every configuration but the article's: each check
# takes milliseconds once JAX has compiled its size bucket, and 16 of them share buckets.
SMALL = dict(batch=4, input_size=3, hidden_size=4, state_size=3, output_size=5)

BATTERY = {
    # The article: B=128, I=10, H=20, R=5, O=100, interval 3, l2, tanh,tanh,identity.
    "article": dict(interval=3),
    "loss_ce": dict(interval=3, loss="ce", **SMALL),
    "loss_bce": dict(interval=3, loss="bce", **SMALL),
    "act_relu": dict(interval=3, activations=("relu", "relu", "identity"), **SMALL),
    "act_sigmoid": dict(interval=3, activations=("sigmoid", "sigmoid", "sigmoid"), **SMALL),
    "act_identity": dict(interval=3, activations=("identity", "identity", "identity"), **SMALL),
    "act_mixed_l2": dict(interval=3, activations=("relu", "tanh", "tanh"), **SMALL),
    "reduction_sum": dict(interval=3, reduction="sum", **SMALL),
    # three windows, the last one step long
    "windows_short_last": dict(interval=3, seq_len=7, **SMALL),
    # one step per window: the state derivative never crosses a step inside a window
    "interval_1": dict(interval=1, seq_len=3, **SMALL),
    "long_window": dict(interval=16, **SMALL),
    "float32": dict(interval=3, seq_len=5, dtype="float32", **SMALL),
    "float32_ce": dict(interval=4, loss="ce", dtype="float32", **SMALL),
    "batch_1": dict(interval=3, seq_len=4, **dict(SMALL, batch=1)),
    "all_sizes_1": dict(interval=2, seq_len=3, batch=1, input_size=1, hidden_size=1,
                        state_size=1, output_size=1),
    "ce_sum_two_windows": dict(interval=2, seq_len=4, loss="ce", reduction="sum", seed=1,
                               **SMALL),
}
