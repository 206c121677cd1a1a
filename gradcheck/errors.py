"""The one error type for bad usage, the error for code that lacks what its adapter
declaration names, and the documented exit codes."""
import enum

__all__ = ["UsageError", "DeclarationError", "ExitCode"]


class ExitCode(enum.IntEnum):
    """What ``gradcheck`` exits with."""
    OK = 0           #: every comparison agrees
    FAILED = 1       #: a verdict against the implementation under test
    USAGE = 2        #: a bad flag or value, an --impl that cannot be loaded, a size too large
    INTERRUPTED = 130  #: Ctrl-C (128 + SIGINT, as shells report it)


class UsageError(ValueError):
    """A bad option value: names the option, what was given and what is allowed."""

    def __init__(self, option, value, allowed):
        self.option, self.value, self.allowed = option, value, allowed
        super().__init__(f"{option}={value!r}: {allowed}")

    def cli_message(self):
        """The same message in command-line spelling (``--seq-len 0: ...``; a flag, whose
        value is True, by its name alone: ``--reset-after: ...``)."""
        flag = f"--{self.option.replace('_', '-')}"
        return f"{flag}: {self.allowed}" if self.value is True else \
            f"{flag} {self.value}: {self.allowed}"


class DeclarationError(AttributeError):
    """The user's code lacks a name its adapter declaration gives (a class, a function, a
    method, an attribute), found when the adapter calls it: a verdict whose whole message
    is the one line naming the declaration's key and what is missing, since no frame of
    the user's code ran to point at."""
