"""An assertion for your own test suite: ``assert_bptt_correct(impl, **options)``.

    from gradcheck.testing import assert_bptt_correct

    @pytest.mark.parametrize("loss", ["l2", "ce", "bce"])
    def test_my_bptt(loss):
        assert_bptt_correct(my_loss_and_grads, interval=3, loss=loss)

Passes silently; otherwise raises ``AssertionError`` whose message leads with the
diagnosis, then the failing arrays, each with its worst element and the time steps that
disagree, in at most ``MAX_LINES`` lines (``report.format_table()`` has every number).
``impl`` is a callable with the loss_and_grads contract or a spec ``FILE.py:FUNC`` /
``MODULE:FUNC``; options are those of ``gradcheck.check``. Bad options raise
``gradcheck.UsageError`` (a ValueError), not AssertionError: a broken test is not a
broken implementation.
"""
from .text import array_lines, config_line

__all__ = ["assert_bptt_correct", "failure_message", "NotSupported", "MAX_LINES"]

# The message's length: the diagnosis, the configuration, a line per failing array,
# and a last line saying how to see everything. 25 fits a terminal and a CI log's view.
MAX_LINES = 25


def failure_message(report, max_lines=MAX_LINES):
    """The AssertionError message for a failed report (diagnosis first), <= max_lines lines."""
    failures = report.failures
    head = [f"gradcheck: {report.impl} FAILED ({len(failures)} of {len(report.results)} "
            f"comparisons disagree)"]
    if report.diagnosis:
        head.insert(0, f"diagnosis: {report.diagnosis}")
    head.append(config_line(report))
    lines = array_lines(report)
    room = max_lines - len(head) - 2
    if len(lines) > room:
        lines = lines[:room - 1] + [f"  ... and {len(lines) - room + 1} more arrays"]
    return "\n".join(head + ["failing arrays (worst element of each):"] + lines +
                     ["(every comparison: gradcheck.check(...).format_table())"])


class NotSupported(AssertionError):
    """The implementation declined these options (it raised NotImplementedError), so
    nothing was judged. An AssertionError: asking for them is still a failed assertion,
    while a ready battery (the pytest plugin) reports it as a skip."""


def assert_bptt_correct(impl, **options):
    """Check ``impl`` with ``gradcheck.check(impl, **options)``; raise AssertionError
    (diagnosis first, see ``failure_message``) unless every comparison agrees;
    NotSupported (an AssertionError) when the implementation declined the options."""
    from .check import check
    report = check(impl, **options)
    if report.status == "not_supported":
        __tracebackhide__ = True
        raise NotSupported(f"not supported by the implementation: {report.unsupported}")
    if not report.passed:
        __tracebackhide__ = True            # pytest: show the message, not this frame
        raise AssertionError(failure_message(report))
