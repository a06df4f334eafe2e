"""Device-level balance: the MaxVio bounds (and that both ends are attained), drops by order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory.analysis import devices as dv


@st.composite
def loads_and_placement(draw):  # type: ignore[no-untyped-def]
    d = draw(st.integers(1, 4))
    m = draw(st.integers(1, 4))
    e = d * m
    c = np.array(draw(st.lists(st.integers(0, 30), min_size=e, max_size=e)))
    if c.sum() == 0:
        c[0] = 1
    contiguous = draw(st.booleans())
    if contiguous:
        return c, d, None
    pi = np.array(draw(st.lists(st.integers(0, d - 1), min_size=e, max_size=e)))
    pi[:d] = np.arange(d)  # every device holds an expert
    return c, d, pi


@settings(max_examples=200)
@given(loads_and_placement())
def test_device_maxvio_lies_in_the_stated_bounds(case):
    c, d, pi = case
    ve = lfb.maxvio(c)
    vd = dv.device_maxvio(c, n_devices=d, placement=pi)
    lo, hi = dv.maxvio_bounds(ve, n_devices=d, placement=pi, n_experts=len(c))
    assert lo - 1e-12 <= vd <= hi + 1e-12
    if pi is None:
        assert vd <= ve + 1e-12  # equal-size groups: device MaxVio <= expert MaxVio
    assert dv.ep_overhead(c, n_devices=d, placement=pi) == pytest.approx(1 + vd)


def test_both_ends_of_the_bound_are_attained():
    # upper: device 0 holds only maximally loaded experts
    c = np.array([5, 5, 1, 1])
    assert dv.device_maxvio(c, n_devices=2) == pytest.approx(lfb.maxvio(c))
    # lower: the most loaded expert shares its device with an empty one, devices level
    c = np.array([6, 0, 3, 3])
    ve = lfb.maxvio(c)
    lo, _ = dv.maxvio_bounds(ve, n_devices=2, n_experts=4)
    assert dv.device_maxvio(c, n_devices=2) == pytest.approx(0.0) == pytest.approx(float(lo))
    c = np.array([8, 0, 2, 2])  # (1 + V_e)/m - 1 > 0 here and attained
    lo, _ = dv.maxvio_bounds(lfb.maxvio(c), n_devices=2, n_experts=4)
    assert float(lo) > 0 and dv.device_maxvio(c, n_devices=2) == pytest.approx(float(lo))


def _brute_drops(ex, e, cap, order):  # type: ignore[no-untyped-def]
    n, k = ex.shape
    slots = [(t, j) for t in range(n) for j in range(k)]
    if order == "rank":
        slots = [(t, j) for j in range(k) for t in range(n)]
    used = np.zeros(e, int)
    drop = np.zeros((n, k), bool)
    for t, j in slots:
        if used[ex[t, j]] >= cap:
            drop[t, j] = True
        else:
            used[ex[t, j]] += 1
    return drop


@settings(max_examples=60)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.5, 1.0, 1.25, 2.0]),
       st.sampled_from(dv.DROP_ORDERS))  # fmt: skip
def test_dropped_slots_match_a_slot_by_slot_buffer(seed, f, order):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(12, 6)) + rng.normal(size=6) * 2
    r = lfb.route(s, 2, weights=False)
    mask = dv.dropped_mask(r.experts, 6, f, order=order)
    cap = int(f * 12 * 2 // 6)
    np.testing.assert_array_equal(mask, _brute_drops(r.experts, 6, cap, order))
    assert mask.sum() == dv.dropped_tokens(r.loads, f, 2) == np.maximum(r.loads - cap, 0).sum()


def test_capacity_and_placement_arguments_are_checked():
    assert dv.capacity(4096, 8, 256, 1.25) == 160
    assert dv.capacity(10, 1, 3, 1.0) == 3 and dv.capacity(10, 1, 6, 1.0) == 1  # floor, not round
    with pytest.raises(ValueError, match="capacity factor"):
        dv.capacity(10, 1, 3, 0.0)
    with pytest.raises(ValueError, match="n_devices must divide"):
        dv.contiguous_placement(6, 4)
    with pytest.raises(ValueError, match="at least one expert"):
        dv.device_loads(np.ones(4), n_devices=3, placement=np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="order"):
        dv.dropped_mask(np.zeros((2, 1), int), 2, 1.0, order="random")


def test_device_table_of_a_run():
    rng = np.random.default_rng(0)
    bs = lfb.sigmoid(rng.normal(size=(20, 64, 16)) + rng.normal(size=16))
    tr = lfb.simulate(bs, 2, lfb.updates.sign(1e-2))
    tab = dv.device_table(tr.loads, 2, n_devices=4)
    assert tab.summary()["bound_violations"] == 0
    assert np.all(tab.maxvio_device <= tab.maxvio_expert + 1e-12)
    np.testing.assert_array_equal(tab.dropped[1.0], np.maximum(tr.loads - 8, 0).sum(axis=1))
