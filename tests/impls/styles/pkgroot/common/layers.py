"""A project's shared layers, imported by its models as ``common.layers`` (the project's
root on the path): the reference's own layers, re-exported."""
from reference.layers import dense_backward, dense_forward, rnn_backward, rnn_forward  # noqa: F401
