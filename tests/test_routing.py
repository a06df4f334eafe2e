"""Biased top-k routing: the invariants of arXiv 2408.15664 Sec. 3 and DeepSeek-V3 Sec. 2.1.2."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory.routing import selection_scores
from lfbtheory.testing.strategies import Instance, biases, instances


def _route(inst, bias=None, **kw):
    return lfb.route(
        inst.scores,
        inst.k,
        bias,
        n_groups=inst.n_groups,
        topk_groups=inst.topk_groups,
        normalize=False,
        **kw,
    )


@given(instances(groups=True), st.data())
def test_every_token_gets_k_distinct_experts_and_loads_count_them(inst, data):
    bias = data.draw(biases(inst.scores.shape[1]))
    r = _route(inst, bias)
    n, e = inst.scores.shape
    assert r.experts.shape == (n, inst.k) and r.experts.dtype == np.int64
    assert all(len(set(row)) == inst.k for row in r.experts.tolist())
    assert r.loads.sum() == n * inst.k
    np.testing.assert_array_equal(r.loads, np.bincount(r.experts.ravel(), minlength=e))


@given(instances(), st.data())
def test_selection_is_the_top_k_of_the_selection_scores(inst, data):
    bias = data.draw(biases(inst.scores.shape[1]))
    r = _route(inst, bias)
    b = selection_scores(inst.scores, bias, "additive")
    chosen = np.take_along_axis(b, r.experts, axis=1)
    mask = np.zeros_like(b, dtype=bool)
    np.put_along_axis(mask, r.experts, True, axis=1)
    worst_chosen = chosen.min(axis=1)
    best_other = np.where(mask, -np.inf, b).max(axis=1)
    assert np.all(worst_chosen >= best_other)


@given(instances(), st.data())
def test_ties_break_to_the_lower_expert_index(inst, data):
    bias = data.draw(biases(inst.scores.shape[1]))
    r = _route(inst, bias)
    b = selection_scores(inst.scores, bias, "additive")
    # rank order of (value desc, index asc) is what a stable argsort of -b gives
    expected = np.argsort(-b, axis=1, kind="stable")[:, : inst.k]
    np.testing.assert_array_equal(r.experts, expected)


@given(
    instances(groups=True),
    st.data(),
    st.one_of(st.integers(-(2**44), 2**44), st.sampled_from([-(2**44), -(2**40), 2**40])),
)
def test_adding_a_constant_to_every_bias_changes_no_selection(inst, data, c_units):
    # Biases and shifts on the grid 2^-8 keep b + c exact in float64 (|b + c| < 2^45), so the
    # claim is tested exactly, huge negative shifts (~ -1.8e13) included.
    e = inst.scores.shape[1]
    units = np.array(data.draw(st.lists(st.integers(-1024, 1024), min_size=e, max_size=e)))
    bias = units / 256.0
    c = c_units / 256.0
    np.testing.assert_array_equal(_route(inst, bias).experts, _route(inst, bias + c).experts)


@given(instances(groups=True), st.data())
def test_selected_experts_lie_in_eligible_groups_whatever_the_bias(inst, data):
    e = inst.scores.shape[1]
    bias = data.draw(biases(e, magnitude=1e6))
    r = _route(inst, bias)
    if inst.n_groups is None:
        return
    g = e // inst.n_groups
    sel = selection_scores(inst.scores, bias, "additive")
    grouped = sel.reshape(len(sel), inst.n_groups, g)
    m = min(2, g)
    gscore = -np.sort(-grouped, axis=2)[:, :, :m].sum(axis=2)
    best = np.argsort(-gscore, axis=1, kind="stable")[:, : inst.topk_groups]
    for t in range(len(sel)):
        assert set((r.experts[t] // g).tolist()) <= set(best[t].tolist())


def test_masked_experts_never_win_even_when_all_biased_scores_are_negative():
    # Group 0 holds the best experts; every biased score is very negative. With a 0-fill
    # (the "masked groups filled with 0" bug class) a masked expert of group 1 would be chosen.
    scores = np.array([[0.9, 0.8, 0.1, 0.05]])
    bias = np.full(4, -100.0)
    r = lfb.route(scores, 2, bias, n_groups=2, topk_groups=1, normalize=False)
    assert sorted(r.experts[0].tolist()) == [0, 1]


@given(instances(), st.data())
def test_gate_weights_do_not_depend_on_the_bias_for_a_fixed_selection(inst, data):
    e = inst.scores.shape[1]
    scores = lfb.sigmoid(inst.scores)
    b1 = data.draw(biases(e))
    r1 = lfb.route(scores, inst.k, b1)
    # A second bias that selects the same set: push the selected experts up uniformly.
    b2 = b1.copy()
    if inst.scores.shape[0] == 1:
        b2[r1.experts[0]] += 10.0
    r2 = lfb.route(scores, inst.k, b2)
    if np.array_equal(np.sort(r1.experts, 1), np.sort(r2.experts, 1)):
        s1 = np.take_along_axis(scores, r1.experts, 1)
        np.testing.assert_allclose(r1.weights, s1 / s1.sum(1, keepdims=True))
        order1, order2 = np.argsort(r1.experts, 1), np.argsort(r2.experts, 1)
        np.testing.assert_allclose(
            np.take_along_axis(r1.weights, order1, 1), np.take_along_axis(r2.weights, order2, 1)
        )


@given(instances(), st.data())
def test_weights_are_the_normalised_unbiased_scores_times_scale(inst, data):
    scores = lfb.sigmoid(inst.scores)
    bias = data.draw(biases(scores.shape[1]))
    r = lfb.route(scores, inst.k, bias, scale=2.5)
    s = np.take_along_axis(scores, r.experts, 1)
    np.testing.assert_allclose(r.weights, 2.5 * s / s.sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(r.weights.sum(1), 2.5, rtol=1e-12)


@given(instances(), st.data())
def test_permuting_the_experts_permutes_the_result(inst, data):
    e = inst.scores.shape[1]
    bias = data.draw(biases(e))
    perm = data.draw(st.permutations(range(e)))
    perm = np.array(perm)
    r = _route(inst, bias)
    rp = _route(Instance(inst.scores[:, perm], inst.k), bias[perm])
    # Expert j of the permuted problem is expert perm[j] of the original. Ties may resolve
    # differently after relabelling (the lower index wins), so compare untied tokens only.
    margin = lfb.tie_margin(inst.scores, inst.k, bias)
    for t in np.flatnonzero(margin > 0):
        assert set(perm[rp.experts[t]].tolist()) == set(r.experts[t].tolist())
    if np.all(margin > 0):
        np.testing.assert_array_equal(rp.loads, r.loads[perm])


@given(instances(), st.data())
def test_multiplicative_bias_selects_top_k_of_the_product(inst, data):
    e = inst.scores.shape[1]
    scores = lfb.sigmoid(inst.scores)
    bias = data.draw(st.lists(st.floats(0.1, 10.0), min_size=e, max_size=e).map(np.array))
    r = lfb.route(scores, inst.k, bias, bias_mode="multiplicative")
    expected = np.argsort(-(scores * bias), axis=1, kind="stable")[:, : inst.k]
    np.testing.assert_array_equal(r.experts, expected)


def test_gates():
    x = np.array([[-800.0, 0.0, 800.0]])
    np.testing.assert_allclose(lfb.sigmoid(x), [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(lfb.softmax(x).sum(), 1.0)
    assert np.all(np.isfinite(lfb.softmax(x)))


@pytest.mark.parametrize("normalize", [True, False])
def test_route_on_a_hand_example(normalize):
    s = np.array([[0.1, 0.9, 0.5, 0.3]])
    r = lfb.route(s, 2, np.array([0.0, -1.0, 0.0, 0.3]), normalize=normalize)
    np.testing.assert_array_equal(r.experts, [[3, 2]])
    w = np.array([0.3, 0.5])
    np.testing.assert_allclose(r.weights[0], w / w.sum() if normalize else w)
    np.testing.assert_array_equal(r.loads, [0, 0, 1, 1])
