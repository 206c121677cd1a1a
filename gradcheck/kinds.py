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
import math
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["Kind", "Diagnosis", "KINDS", "GROUPS", "register", "kind_of", "json_fields"]

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
        """The JSON's ``"diagnosis_detail"``: plain JSON (no NaN or inf)."""
        d = {"kind": self.kind, "group": self.group, "title": self.title,
             "hint": self.hint, "evidence": _plain(self.evidence)}
        if self.second is not None:
            d["second"] = {"kind": self.second.kind, "text": self.second.text,
                           "hint": self.second.hint, "evidence": _plain(self.second.evidence)}
        return d


def json_fields(finding):
    """The JSON keys that stand beside ``"diagnosis"`` (its sentence) wherever it appears:
    ``"diagnosis_kind"`` and ``"diagnosis_detail"`` (null without a finding)."""
    return {"diagnosis_kind": None if finding is None else finding.kind,
            "diagnosis_detail": None if finding is None else finding.detail()}


def _plain(v):
    """``v`` as plain JSON data: NumPy scalars as Python numbers, non-finite floats as None."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and callable(v.item) and getattr(v, "shape", None) == ():
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# -- the problems a call can have (untrusted.PROBLEM_NAMES): one vocabulary for check,
#    grade and the worker. Their sentences are the Problem's own message.
register("exception", "contract", "raised an exception", "Your code raised an exception.")
register("declaration", "contract", "adapter declaration does not match the code",
         "Your adapter declaration names something your code does not have, or a number of "
         "values it does not return.")
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

# -- what the check itself could not do
register("not_supported", "contract", "declines the options",
         "Your code does not support the options of this check.")
register("not_judged", "unclear", "cannot be judged in this dtype",
         "Nothing disagrees, but rounding in this precision is too coarse to judge some "
         "arrays.")

# -- precision: only float32-level disagreement in a float64 check
register("float32", "precision", "float32 precision",
         "Your code computes in single precision (float32) somewhere inside a "
         "double-precision check: an array or buffer has the wrong dtype.")

# -- conceptual: the maths of the forward or the backward
register("clipped", "conceptual", "gradient clipped inside",
         "Some gradients are cut off at a fixed bound inside your code; the gradient "
         "itself must not be clipped.")
register("buffers_not_reset", "conceptual", "gradient buffers not reset between windows",
         "Your weight gradients keep something from the previous call; each call must "
         "start afresh.")
register("stale_state", "conceptual", "forward ignores the h0 passed in",
         "Your forward pass does not start from the state it is given.")
register("state_accumulator_not_reset", "conceptual", "state derivative kept between windows",
         "The state's derivative keeps something from the previous call; each call must "
         "start afresh.")
register("l2_half", "conceptual", "l2 without its 0.5",
         "Every gradient is off by the same factor: compare your loss with the contract's "
         "definition of it.")
register("forward", "conceptual", "forward pass",
         "Your forward pass computes a different function than the contract's.")
register("loss_value", "conceptual", "loss value (reduction)",
         "The loss you return is not the one your gradients differentiate.")
register("reduction", "conceptual", "reduction of the loss",
         "The loss and every gradient are scaled wrongly: check how the loss is averaged.")
register("backward_scale", "conceptual", "reduction scale in the backward",
         "Every gradient is off by the same factor: check how the backward pass averages.")
register("h_last", "conceptual", "h_last", "The final state you return is not the last "
         "step's state.")
register("output_derivative", "conceptual", "output derivative dL/dz3",
         "The derivative at the output layer is wrong for this loss and output activation.")
register("dh_next_not_passed", "conceptual", "dh_next not passed back through time",
         "The state's derivative from later steps does not reach the earlier steps.")
register("dh_next_through_U", "conceptual", "dh_next through U instead of U^T",
         "The state's derivative goes back through the recurrent weights the wrong way "
         "round.")
register("dh_next_skips_f2", "conceptual", "dh_next misses f2'",
         "The state's derivative loses something on its way back through time.")
register("f2_derivative", "conceptual", "RNN activation derivative f2'",
         "The derivative of the recurrent layer's activation is computed from the wrong "
         "value.")
register("cell_backward", "conceptual", "cell backward (not a mistake of its zoo)",
         "The backward pass through the recurrent cell is wrong at every step.")
register("state_derivative_unclear", "unclear", "state derivative (cause unclear)",
         "The state's derivative goes wrong on its way back through time.")
register("f1_derivative", "conceptual", "first layer derivative f1'",
         "The first layer's backward leaves out or miscomputes its activation's derivative.")
register("dx_skips_f1", "conceptual", "dx misses f1'",
         "The input's gradient skips a step that the first layer's weight gradients take.")
register("zeros", "conceptual", "zero gradient", "A gradient is returned as all zeros.")
register("dh0_zeros", "conceptual", "dh0", "The initial state's gradient is returned as "
         "zeros; it is what the state's derivative is after the first step.")
register("transposed", "conceptual", "transposed gradient",
         "A gradient is transposed; its shape matched only because the matrix is square.")
register("scale_one", "conceptual", "scale error in one gradient",
         "One gradient is off by a constant factor.")
register("dx_reversed", "conceptual", "dx time order",
         "The input's gradient is stored in reversed time order.")
register("not_accumulated", "conceptual", "= instead of +=",
         "A weight gradient keeps one step's contribution instead of summing over time.")
register("dU_first_step", "conceptual", "dU's first-step term",
         "The recurrent weights' gradient is wrong at the window's first step, where the "
         "incoming state is used.")
register("dU_from_h_t", "conceptual", "dU from the wrong state",
         "The recurrent weights' gradient pairs each step with the wrong state.")
register("dW3_from_h_prev", "conceptual", "dW3 from the wrong state",
         "The output layer's weight gradient pairs each step with the wrong state.")
register("one_line", "conceptual", "one gradient line",
         "One gradient's own computation is wrong; the others agree.")

# -- unclear: the arrays disagree and no tested cause reproduces the numbers alone
register("ambiguous", "unclear", "several candidate causes",
         "More than one mistake would explain these numbers; look at the arrays that "
         "disagree.")
register("arrays_disagree", "unclear", "other (arrays disagree)",
         "Some arrays disagree; look at which ones, and at which steps.")
