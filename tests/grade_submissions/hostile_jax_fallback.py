"""Imports JAX, and when that is refused quietly falls back to a correct implementation.
JAX is never used: an unused import of a banned library costs nothing (the instructor's
summary lists it)."""
try:
    import jax  # noqa: F401
except ImportError:
    jax = None
# tests/test_grade.py (made) appends correct_loop.py's code here: a submission is graded
# from a private copy of its own file, without its classmates' files beside it.
