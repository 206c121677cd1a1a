"""Hostile: hands in the project's own reference implementation."""
from reference import loss_and_grads  # noqa: F401
