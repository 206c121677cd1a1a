"""The report of one check: results per window, array and oracle; as a table or a dict."""
import dataclasses
import math
from typing import Optional

from .kinds import Diagnosis, json_fields
from .text import answer, table


__all__ = ["Result", "Report"]


@dataclasses.dataclass
class Result:
    """One array (or contract problem) against one oracle in one window (1-based)."""
    name: str
    oracle: str
    window: int
    passed: bool
    message: str = ""
    checked: int = 0
    excluded: int = 0
    max_abs_err: Optional[float] = None
    max_rel_err: Optional[float] = None
    ratio: Optional[float] = None
    rtol: Optional[float] = None
    atol_rel: Optional[float] = None
    worst_index: Optional[list] = None
    impl_value: Optional[float] = None
    oracle_value: Optional[float] = None
    nonfinite: int = 0
    steps: Optional[list] = None        # 1-based time steps whose contributions disagree
    # the reference's own relative error in this dtype, where it raised atol_rel
    # (tolerances.calibrated): rounding no implementation in this dtype can avoid
    rounding: Optional[float] = None

    def to_dict(self):
        return {k: _strict(v) for k, v in dataclasses.asdict(self).items()}


def _strict(v):
    """Strict JSON: no NaN or inf tokens."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _strict_tree(v):
    if isinstance(v, dict):
        return {k: _strict_tree(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_strict_tree(x) for x in v]
    return _strict(v)


@dataclasses.dataclass
class Report:
    config: dict
    impl: str
    mode: str
    mode_reason: str
    windows: list                         # [(start, stop)], 0-based, stop exclusive
    results: list
    diagnosis: Optional[str] = None
    timings: dict = dataclasses.field(default_factory=dict)
    skipped: list = dataclasses.field(default_factory=list)   # gradients never compared
    unsupported: Optional[str] = None     # the implementation declined these options
    # extra calls (attribution, probes) a limit stopped, each a sentence
    skipped_calls: list = dataclasses.field(default_factory=list)
    isolation: dict = dataclasses.field(default_factory=dict)   # how the impl ran, limits
    # what the implementation printed, {"stdout": excerpt, "stderr": excerpt}: never in
    # to_dict(), so the JSON document stays the checker's own words
    output: dict = dataclasses.field(default_factory=dict, repr=False)
    # per-step errors and state derivatives for the pictures (gradcheck.trace), when
    # check(..., trace=True) measured them; plain data
    trace: Optional[dict] = None
    # the diagnosis as data (kinds.Diagnosis: kind, text, evidence, second); setting it
    # sets ``diagnosis``, its sentence
    finding: Optional[Diagnosis] = None

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "finding" and value is not None:
            super().__setattr__("diagnosis", value.text)

    @property
    def passed(self):
        return (self.unsupported is None and bool(self.results)
                and all(r.passed for r in self.results))

    @property
    def status(self):
        """"passed", "failed" or "not_supported"."""
        if self.unsupported is not None:
            return "not_supported"
        return "passed" if self.passed else "failed"

    @property
    def failures(self):
        return [r for r in self.results if not r.passed]

    def to_dict(self):
        """The JSON document of interface.md section 4 (timings under "timings" only)."""
        return {
            "passed": self.passed,
            "status": self.status,
            "skipped": list(self.skipped),
            "impl": self.impl,
            "config": self.config,
            "mode": self.mode,
            "mode_reason": self.mode_reason,
            "windows": [{"window": i + 1, "steps": [a + 1, b]}
                        for i, (a, b) in enumerate(self.windows)],
            "diagnosis": self.diagnosis,
            **json_fields(self.finding),
            "results": [r.to_dict() for r in self.results],
            "timings": self.timings,
            "skipped_calls": list(self.skipped_calls),
            "isolation": dict(self.isolation),
            **({} if self.trace is None else {"trace": _strict_tree(self.trace)}),
        }

    def format_output(self):
        """What the implementation printed, as bounded excerpts (empty if nothing)."""
        parts = []
        for stream, text in self.output.items():
            parts.append(f"--- the implementation's {stream} (excerpt) ---")
            parts.append(text.rstrip("\n"))
        return "\n".join(parts)

    def format_table(self):
        """Every comparison in a table, then the failures, notes, diagnosis and verdict."""
        return table(self)

    def format_text(self, verbose=False):
        """The answer first: verdict, diagnosis, one line per failing array (see
        gradcheck.text.answer); ``verbose`` adds the table of every comparison."""
        return answer(self, verbose=verbose, more="format_text(verbose=True)")
