"""Loads, MaxVio (arXiv 2408.15664 Sec. 4.1) and tie margins."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory.testing.strategies import instances


def test_maxvio_of_balanced_and_fully_collapsed_loads():
    assert lfb.maxvio(np.array([4, 4, 4, 4])) == 0.0
    # all n*k on k experts: MaxVio = E/k - 1
    assert lfb.maxvio(np.array([8, 8, 0, 0])) == pytest.approx(4 / 2 - 1)


@given(instances())
def test_maxvio_lies_in_its_range(inst):
    n, e = inst.scores.shape
    r = lfb.route(inst.scores, inst.k, normalize=False)
    v = lfb.maxvio(r.loads)
    assert 0.0 <= v <= e / inst.k - 1 + 1e-12


def test_maxvio_batch_and_global():
    loads = np.array([[2, 0], [0, 2]])
    np.testing.assert_allclose(lfb.maxvio(loads), [1.0, 1.0])
    np.testing.assert_allclose(lfb.maxvio_global(loads), [1.0, 0.0])


def test_loads_exclude_padding_also_when_tokens_equal_experts():
    experts = np.array([[0], [1], [2], [0]])
    valid = np.array([True, True, True, False])
    np.testing.assert_array_equal(lfb.expert_loads(experts, 4, valid=valid), [1, 1, 1, 0])


@given(instances(), st.integers(0, 3))
def test_tie_margin_is_the_gap_between_kth_and_next(inst, _):
    s = inst.scores
    m = lfb.tie_margin(s, inst.k)
    e = s.shape[1]
    if inst.k == e:
        assert np.all(np.isinf(m))
    else:
        srt = -np.sort(-s, axis=1)
        np.testing.assert_array_equal(m, srt[:, inst.k - 1] - srt[:, inst.k])
        assert np.all(m >= 0)
