"""The cells other than the vanilla RNN, a module of each per side that has its own maths.

For a cell ``NAME``: ``NAME.py`` declares it (model.register_cell: its arrays, states,
options, diagnosis kinds), ``NAME_jax.py`` is its JAX oracle written from the equations,
``NAME_fd.py`` its finite-difference engine, ``NAME_zoo.py`` its deliberately wrong
implementations; ``reference/NAME.py`` is its hand-written NumPy reference.
"""
