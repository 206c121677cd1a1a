"""The one list of diagnosis kinds: every kind documented (the cells' too), hints without
formulas or instructor flags, the Diagnosis data plain JSON."""
import json
import re
from pathlib import Path

import numpy as np
import pytest

from gradcheck import model
from gradcheck.kinds import GROUPS, KINDS, Diagnosis, json_fields, register

README = Path(__file__).resolve().parents[1] / "README.md"
for _name in model.cell_names():      # every cell's module registers its kinds when loaded
    model.cell(_name)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_is_in_the_readme_table(name):
    table = README.read_text().split("### Diagnoses are data", 1)[1].split("\n## ", 1)[0]
    assert f"`{name}`" in table


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_hint_names_the_mistake_without_a_formula_or_a_flag(name):
    hint = KINDS[name].hint      # empty: a kind never shown to a student (a flag)
    assert not re.search(r"[=^*]|--|\b[dW]\w*\d|dh_next|f[123]'", hint), hint
    assert not hint or (hint.endswith(".") and hint[0].isupper())
    assert KINDS[name].group in GROUPS and KINDS[name].title


def test_a_kind_is_registered_once_and_in_a_known_group():
    with pytest.raises(ValueError, match="registered twice"):
        register("transposed", "conceptual", "t", "T.")
    with pytest.raises(ValueError, match="is not one of"):
        register("a_new_kind", "nonsense", "t", "T.")
    with pytest.raises(ValueError, match="unknown diagnosis kind"):
        Diagnosis("no_such_kind", "text")


def test_the_detail_is_plain_json():
    second = Diagnosis("float32", "Besides ...", {"ratio": np.float64(0.25)})
    d = Diagnosis("buffers_not_reset", "Window 1 agrees ...",
                  {"windows": [np.int64(2)], "factor": float("nan"), "steps": {"U": (4, 5)}},
                  second)
    fields = json_fields(d)
    text = json.dumps(fields, allow_nan=False)
    back = json.loads(text)
    assert back["diagnosis_kind"] == "buffers_not_reset"
    assert back["diagnosis_detail"]["evidence"] == {"windows": [2], "factor": None,
                                                    "steps": {"U": [4, 5]}}
    assert back["diagnosis_detail"]["second"]["kind"] == "float32"
    assert back["diagnosis_detail"]["second"]["evidence"] == {"ratio": 0.25}
    assert back["diagnosis_detail"]["hint"] == KINDS["buffers_not_reset"].hint
    assert json_fields(None) == {"diagnosis_kind": None, "diagnosis_detail": None}
