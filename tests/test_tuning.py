"""``lfb bench --tune``'s break-even rule: the knob is the largest size up to which the small
path never loses, so a knob never sends a size to the slower path inside the grid's prefix."""

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

_spec = importlib.util.spec_from_file_location(
    "_tune", Path(__file__).resolve().parents[1] / "benchmarks" / "tune.py"
)
assert _spec is not None and _spec.loader is not None
tune = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tune)

times = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12)


@given(times, times)
def test_break_even_is_the_end_of_the_winning_prefix(small, large):
    m = min(len(small), len(large))
    small, large = small[:m], large[:m]
    grid = [16 * (i + 1) for i in range(m)]
    g = tune.break_even(grid, small, large)
    below = [i for i, size in enumerate(grid) if size <= g]
    assert all(small[i] <= large[i] for i in below)  # never slower up to the knob
    nxt = len(below)
    assert nxt == m or small[nxt] > large[nxt]  # and the next size is a loss (or the grid ends)


def test_break_even_cases():
    assert tune.break_even([16, 32, 64], [1, 1, 3], [2, 2, 2]) == 32
    assert tune.break_even([16, 32, 64], [3, 1, 1], [2, 2, 2]) == 0  # a later win does not count
    assert tune.break_even([16, 32], [1, 1], [1, 1]) == 32  # ties go to the small path


@pytest.mark.parametrize(
    "grid, small, large",
    [([], [], []), ([16, 16], [1, 1], [1, 1]), ([32, 16], [1, 1], [1, 1]), ([16], [1, 2], [1])],
)
def test_break_even_refuses_bad_grids(grid, small, large):
    with pytest.raises(ValueError, match="grid"):
        tune.break_even(grid, small, large)
