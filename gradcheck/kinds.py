"""The one list of diagnosis kinds, and the Diagnosis that ``diagnose`` returns.

A diagnosis is data: a stable ``kind`` (a name from ``KINDS``), the sentence, and the
evidence it rests on. Everything that shows a diagnosis (the report, the JSON, the
pictures, the grader and its class summary) reads the kind; nothing parses the sentence.

A kind has three wordings:
- ``title``: the instructor's short label (the class summary's row);
- ``hint``: the student's words, naming the kind of mistake without the formula (what
  ``gradcheck grade --feedback hint`` shows);
- the sentence itself (``Diagnosis.text``), built by ``diagnose`` from the kind's
  template and the evidence: the full diagnosis (the CLI, JSON, the instructor's outputs).

``group`` sorts kinds for grading and the class summary:
- ``conceptual``: a wrong gradient or forward (a bug in the maths);
- ``precision``: only float32-level disagreement in a float64 check;
- ``contract``: the call breaks the contract (shape, missing key, NaN, writes its inputs,
  wrong return value);
- ``crash``, ``timeout``, ``memory``: how the call ended;
- ``honesty``: a banned library used, the checker's files read;
- ``packaging``: the submission cannot be found or loaded;
- ``unclear``: the arrays disagree and no tested cause reproduces the numbers.

Cells (``--cell lstm|gru``) register their own kinds with ``register`` from their own
modules; a kind's name is unique across all of them.
"""
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["Kind", "Diagnosis", "KINDS", "GROUPS", "register", "kind_of"]

GROUPS = ("conceptual", "precision", "contract", "crash", "timeout", "memory", "honesty",
          "packaging", "unclear")


@dataclass(frozen=True)
class Kind:
    name: str       # stable identifier: JSON "diagnosis_kind", the summary's key
    group: str      # one of GROUPS
    title: str      # instructor's label, a few words
    hint: str       # student's words, no formula, no instructor-only flag


KINDS = {}


def register(name, group, title, hint):
    """Add a kind to the one list; the same name twice is a programming error."""
    if group not in GROUPS:
        raise ValueError(f"kind {name!r}: group {group!r} is not one of {GROUPS}")
    if name in KINDS:
        raise ValueError(f"kind {name!r} is registered twice")
    KINDS[name] = Kind(name, group, title, hint)
    return KINDS[name]


def kind_of(name):
    return KINDS[name]


@dataclass(frozen=True)
class Diagnosis:
    """What ``diagnose`` found: one kind, its sentence, the evidence.

    evidence: plain JSON-able data: ``windows``, ``arrays``, ``steps`` ({array: [t]}),
    ``candidate`` (the zoo flaw that reproduced the numbers) and ``factor`` (by how much
    it reproduced them), and whatever the kind's sentence quotes.
    second: a further finding beside this one (a float32-level disagreement next to a
    larger bug is diagnosed as the larger bug, the float32 part as the second finding).
    """
    kind: str
    text: str
    evidence: dict = field(default_factory=dict)
    second: Optional["Diagnosis"] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown diagnosis kind {self.kind!r}")

    @property
    def group(self):
        return KINDS[self.kind].group

    @property
    def hint(self):
        return KINDS[self.kind].hint

    @property
    def title(self):
        return KINDS[self.kind].title

    def __str__(self):
        return self.text

    def detail(self):
        """The JSON's ``"diagnosis_detail"``."""
        d = {"kind": self.kind, "group": self.group, "title": self.title,
             "hint": self.hint, "evidence": self.evidence}
        if self.second is not None:
            d["second"] = {"kind": self.second.kind, "text": self.second.text}
        return d


# -- the problems a call can have (untrusted.PROBLEM_NAMES): one vocabulary for check,
#    grade and the worker. Their sentences are the Problem's own message.
register("exception", "contract", "raised an exception", "Your code raised an exception.")
register("return_value", "contract", "breaks the return contract",
         "Your function does not return what the contract asks for.")
register("missing_grad", "contract", "wrong set of gradient keys",
         "The gradients you return do not have the names the contract asks for.")
register("shape", "contract", "array of the wrong shape",
         "An array you return has the wrong shape.")
register("nan", "contract", "NaN or inf", "Your code produces NaN or inf.")
register("inputs_modified", "contract", "writes into its inputs",
         "Your code changes the arrays it is given; it must leave its inputs alone.")
register("timeout", "timeout", "time limit", "Your code took longer than the time limit.")
register("time_limit", "timeout", "time budget",
         "Your code used up the time allowed for the whole check.")
register("memory", "memory", "memory limit", "Your code used more memory than allowed.")
register("crashed", "crash", "process ended", "Your code's process ended before it answered.")
register("protocol", "crash", "broke the checker's protocol",
         "Your code wrote to the checker's private channel.")

# -- grading's own kinds (gradcheck grade): how a submission was handled, not a bug in its
#    maths; kept out of the class summary's per-array counts.
register("banned_library_used", "honesty", "used a banned library",
         "Your code uses a library that is not allowed in this assignment; compute the "
         "gradients with NumPy yourself.")
register("banned_library_imported", "honesty", "imported a banned library, did not use it "
         "(no marks lost)",
         "Your code imports a library that is not allowed in this assignment. It was not "
         "used, so it cost nothing; remove the import.")
register("read_checker_files", "honesty", "read the checker's files",
         "Your code tried to read the grader's own files; that is not allowed.")
register("reference_copy", "honesty", "source closely matches reference/ (flagged, no "
         "marks lost)", "")
register("unloadable", "packaging", "cannot be loaded",
         "Your file could not be loaded; the message says where.")
register("no_entry_file", "packaging", "no file to grade",
         "No Python file to grade was found where your submission should be.")
register("ambiguous_entry", "packaging", "several files could be the submission",
         "Several of your files define the function; keep it in one file.")
register("exited", "crash", "process exited", "Your code ended its own process.")
register("ungraded", "crash", "the grader failed on it",
         "The grader could not grade your submission; your instructor has been told.")
