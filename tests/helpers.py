"""Small shared helpers for the tests: configs and data without going through the CLI."""
from gradcheck.config import make_config
from gradcheck.data import make_data

SMALL = dict(batch=4, input_size=3, hidden_size=4, state_size=3, output_size=5)


def small_data(**overrides):
    """(config, data) for a small configuration, overriding any option."""
    options = dict(SMALL, **overrides)
    config = make_config(**options)
    return config, make_data(config)

