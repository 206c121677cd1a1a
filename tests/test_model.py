"""The model's description (gradcheck/model.py) and everything that must agree with it.

The reference and both oracles keep their own maths and their own names on purpose;
these tests prove that each of them covers every name the description has."""
import numpy as np
import pytest

from gradcheck import model
from gradcheck._reference import reference
from gradcheck.config import OPTIONS, make_config
from gradcheck.data import make_data
from gradcheck.oracle_fd import fd_window
from gradcheck.oracle_jax import jax_window

TINY = dict(batch=2, input_size=2, hidden_size=3, state_size=2, output_size=3)


def _reference(params, x, y, h0, **options):
    value, grads, h_last = reference.loss_and_grads(params, x, y, h0, **options)
    return value, grads, h_last


def _jax(params, x, y, h0, **options):
    out = jax_window(params, x, y, h0, **options)
    return out.loss, out.grads, out.h_last


def _fd(params, x, y, h0, **options):
    return None, fd_window(params, x, y, h0, **options).grads, None


IMPLEMENTATIONS = [pytest.param(_reference, id="reference"), pytest.param(_jax, id="jax"),
                   pytest.param(_fd, id="fd")]


def _models():
    """Every loss with every activation it allows in each place, and both reductions."""
    for loss, spec in model.LOSSES.items():
        for position in range(3):
            for act in model.ACTIVATIONS:
                acts = list(model.DEFAULT_ACTIVATIONS)
                acts[position] = act
                if spec.logits and acts[2] != "identity":
                    continue
                yield loss, tuple(acts)


MODELS = sorted(set(_models()))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("reduction", list(model.REDUCTIONS))
@pytest.mark.parametrize("loss,activations", MODELS, ids=[f"{l}-{','.join(a)}" for l, a in MODELS])
def test_covers_every_loss_activation_reduction_and_gradient(impl, loss, activations, reduction):
    config = make_config(interval=2, loss=loss, activations=activations, reduction=reduction,
                         **TINY)
    data = make_data(config)
    value, grads, h_last = impl(data.params, data.x, data.y, data.h0, **config.model_options)
    assert set(grads) == set(model.GRAD_NAMES)
    for name in model.GRAD_NAMES:
        assert np.shape(grads[name]) == model.shape_of(name, config.sizes, config.seq_len), name
        assert np.all(np.isfinite(grads[name])), name
    if value is not None:
        assert np.isfinite(value)
        assert np.shape(h_last) == model.shape_of("h_last", config.sizes)


def test_reference_names_are_the_models():
    assert reference.PARAM_NAMES == model.PARAM_NAMES
    assert reference.GRAD_NAMES == model.GRAD_NAMES
    assert set(reference.activations.ACTIVATIONS) == set(model.ACTIVATIONS)
    assert set(reference.losses.LOSSES) == set(model.LOSSES)
    assert set(reference.network.REDUCTIONS) == set(model.REDUCTIONS)


def test_data_follows_the_shapes_and_targets():
    for loss, spec in model.LOSSES.items():
        config = make_config(interval=3, seq_len=4, loss=loss, **TINY)
        data = make_data(config)
        for name in model.PARAM_NAMES:
            assert data.params[name].shape == model.shape_of(name, config.sizes), name
        assert data.x.shape == model.shape_of("x", config.sizes, 4)
        assert data.h0.shape == model.shape_of("h0", config.sizes)
        assert data.y.shape == model.shape_of(f"{loss}:y", config.sizes, 4)
        if spec.target == "class_ids":
            assert data.y.dtype.kind == "i" and data.y.max() < config.output_size
        elif spec.target == "probabilities":
            assert 0 <= data.y.min() and data.y.max() <= 1


def test_every_array_belongs_to_exactly_one_layer():
    owned = [n for layer in model.LAYERS for n in layer.arrays]
    assert sorted(owned) == sorted(model.GRAD_NAMES)
    assert [layer.activation for layer in model.LAYERS] == [0, 1, 2]


def test_options_are_the_signature_of_check():
    import inspect

    import gradcheck
    params = inspect.signature(gradcheck.check).parameters
    for option in OPTIONS:
        assert option in params, option
    for size in model.SIZES:
        assert params[size.option].default == size.default
    assert params["loss"].default == model.DEFAULT_LOSS
    assert tuple(params["activations"].default) == model.DEFAULT_ACTIVATIONS


def test_cli_flags_come_from_the_model():
    from gradcheck.cli import build_parser
    text = build_parser().format_help()
    for size in model.SIZES:
        assert f"--{size.option.replace('_', '-')} {size.letter}" in text
    for name in list(model.LOSSES) + list(model.ACTIVATIONS) + list(model.REDUCTIONS):
        assert name in text, name


# ---- the cells: a registry in the model description

def test_the_rnn_is_a_registered_cell_and_its_description_is_the_module_names():
    m = model.describe("rnn")
    assert model.DEFAULT_CELL == "rnn" and model.cell_names()[0] == "rnn"
    assert m.grad_names == model.GRAD_NAMES
    assert m.param_names == model.PARAM_NAMES
    assert m.output_names == model.OUTPUT_NAMES
    assert m.state_names == (model.STATE_NAME,) and m.extra_states == ()
    assert m.layers[1].arrays == model.LAYERS[1].arrays


def test_a_cell_registered_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        model.register_cell(model.cell("rnn"))


def test_an_option_the_cell_does_not_declare_is_refused():
    with pytest.raises(TypeError, match="has no option 'reset_after'"):
        model.describe("rnn", reset_after=True)


@pytest.mark.parametrize(("kwargs", "message"), [
    pytest.param(dict(cell="cnn"), "cell='cnn': expected one of rnn", id="unknown-cell"),
    pytest.param(dict(cell_options=("fast",)), "fast=True: not an option of any cell",
                 id="unknown-cell-option"),
])
def test_bad_cell_options_are_usage_errors(kwargs, message):
    import gradcheck
    with pytest.raises(gradcheck.UsageError, match="^" + message):
        make_config(interval=2, **kwargs)


def test_check_refuses_a_keyword_no_cell_declares():
    import gradcheck
    with pytest.raises(TypeError, match="unexpected keyword argument 'fast'"):
        gradcheck.check(interval=1, fast=False)


def test_the_config_counts_its_cell_s_parameters():
    config = make_config(interval=2, **TINY)
    I, H, R, O = 2, 3, 2, 3
    assert config.n_params == I * H + H + H * R + R * R + R + R * O + O
    assert "cell" not in config.to_dict()     # an RNN check's JSON as before cells
