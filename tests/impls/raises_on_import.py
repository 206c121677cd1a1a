"""An --impl file whose import fails: loading it must be a usage error, not a traceback."""
raise RuntimeError("raises_on_import.py fails on purpose at import")


def f(params, x, y, h0, **options):  # never reached
    raise AssertionError("unreachable")
