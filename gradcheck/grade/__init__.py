"""``gradcheck grade SUBMISSION...``: grade a class of hand-written BPTT submissions.

Each submission runs in its own worker process (one per submission and test), with a
time limit per call and a memory limit; the oracles run once per test, in this process,
and are shared by all submissions (``prepare``). See ``gradcheck grade --help`` and the
README's section for instructors.
"""
from .cli import main

__all__ = ["main"]
