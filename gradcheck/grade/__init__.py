"""``gradcheck grade SUBMISSION...``: grade a class of hand-written BPTT submissions.

Each submission runs in a worker process of its own (gradcheck.isolation), with a time
limit per call and a memory limit; the oracles run once per test, in this process,
and are shared by all submissions (``prepare``). See ``gradcheck grade --help`` and the
README's section for instructors.
"""
__all__ = ["main"]


def main(argv=None):
    """The command line (imported when called: the worker imports ``grade.honesty``)."""
    from .cli import main as cli_main
    return cli_main(argv)
