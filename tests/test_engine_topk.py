"""The compiled routing kernel equals the numpy path exactly, ties included."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lfbtheory as lfb
from lfbtheory import _engine
from lfbtheory._engine.topk import (
    cols_top,
    row_top,
    threshold_guess,
    transpose_checked,
)
from lfbtheory._engine.tuning import TUNING
from lfbtheory.routing import selection_offsets, selection_scores, topk_indices
from lfbtheory.testing.strategies import biases, instances
from lfbtheory.validation import MAGNITUDE_LIMIT

_REGISTER_MAX_E = TUNING.knobs.row_registers_max_e


def _reference(s, k, bias=None, bias_mode="additive"):
    """The numpy reference: topk_indices (a partition) of the selection scores."""
    b = None if bias is None else np.asarray(bias, dtype=np.float64)
    experts = topk_indices(selection_scores(s, b, bias_mode), k)
    return experts, np.bincount(experts.ravel(), minlength=s.shape[1])


def _route(s, k, bias=None, bias_mode="additive", path=None):
    b = None if bias is None else selection_offsets(np.asarray(bias, np.float64), bias_mode)
    return _engine.route(s, k, b, bias_mode, path=path)


def _assert_same(s, k, bias=None, bias_mode="additive"):
    for path in (None, "registers", "threshold"):
        _assert_one(s, k, bias, bias_mode, path)
    public = lfb.route(s, k, bias, bias_mode=bias_mode, weights=False)
    np.testing.assert_array_equal(public.experts, _reference(s, k, bias, bias_mode)[0])


def _assert_one(s, k, bias, bias_mode, path):
    experts, loads = _route(s, k, bias, bias_mode, path)
    ref_e, ref_l = _reference(s, k, bias, bias_mode)
    assert experts.dtype == np.int64 and loads.dtype == np.int64
    np.testing.assert_array_equal(experts, ref_e)
    np.testing.assert_array_equal(loads, ref_l)


@settings(max_examples=200, deadline=None)
@given(instances(max_n=40, max_experts=24), st.data())
def test_kernel_equals_the_numpy_reference(inst, data):
    s, k = inst.scores, inst.k
    e = s.shape[1]
    _assert_same(s, k)
    b = data.draw(biases(e))
    _assert_same(s, k, b)
    # a bias with many equal entries makes ties in the selection scores too
    _assert_same(s, k, np.round(b))
    _assert_same(s, k, np.abs(b) + 0.5, "multiplicative")


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 64), st.integers(1, 300), st.data())
def test_kernel_on_float32_with_heavy_ties(n, e, data):
    k = data.draw(st.integers(1, e))
    s = data.draw(hnp.arrays(np.float32, (n, e), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])))
    _assert_same(s, k)
    _assert_same(s, k, np.linspace(0.0, 1.0, e) ** 2)


@pytest.mark.parametrize("n,e,k", [(4096, 256, 8), (2000, 64, 6), (513, 7, 3), (300, 17, 16)])
def test_kernel_on_seeded_workloads_with_drifting_rows(n, e, k):
    """Rows whose scale drifts defeat the row-threshold guess; the result must not change."""
    rng = np.random.default_rng([n, e, k])
    s = (rng.normal(size=(n, e)) * np.linspace(0.01, 10.0, n)[:, None]).astype(np.float32)
    s[::7] = np.round(s[::7])  # rows with ties
    s[n // 2 :] -= 50.0  # a jump in level halfway
    b = rng.normal(size=e)
    _assert_same(s, k)
    _assert_same(s, k, b)
    _assert_same(s.astype(np.float64), k, b)


def _row_top_rows(rows, kk, idx_dtype):
    """row_top on every row, on each of its paths (registers on or off) and with guesses of
    the kk-th value that are right, too high (no entry passes: the row is redone), too low,
    and the one threshold_guess makes from the rows: the choice of path never changes the
    result, which is a stable argsort's (values: the row's own entries, bit for bit)."""
    e = rows.shape[1]
    vals = np.empty(kk)
    idx = np.empty(kk, dtype=idx_dtype)
    cand = np.empty(e + 1, dtype=np.int64)
    guess = threshold_guess(np.ascontiguousarray(rows), np.zeros(e), 0, kk) if kk < e else -np.inf
    for r in rows:
        ref = np.argsort(-r, kind="stable")[:kk]  # desc, ties: lower index first
        kth = r[ref[-1]]
        for regs in (True, False):
            for theta in (-np.inf, kth, np.inf, -1e300, guess):
                row_top(r, kk, vals, idx, cand, theta, regs)
                np.testing.assert_array_equal(idx, ref)
                np.testing.assert_array_equal(vals.view(np.uint64), r[ref].view(np.uint64))


_TIES = [-np.inf, -1.0, -0.0, 0.0, 0.5, 1.0, np.inf]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 72), st.integers(1, 12), st.data())
def test_row_top_equals_stable_argsort(e, n, data):
    """Every path: kk = 1, the register paths (kk = 2, 3, 4), the threshold path, kk = E; rows
    of heavy ties, signed zeros and infinities (which also upset the threshold guess)."""
    kk = data.draw(st.one_of(st.integers(1, min(e, 6)), st.just(e)), label="kk")
    elements = data.draw(
        st.sampled_from(
            [st.sampled_from(_TIES), st.floats(-1e6, 1e6, allow_nan=False), st.just(2.5)]
        )
    )
    rows = data.draw(hnp.arrays(np.float64, (n, e), elements=elements), label="rows")
    _row_top_rows(rows, kk, data.draw(st.sampled_from([np.int32, np.int64])))


@pytest.mark.parametrize("kk", [1, 2, 3, 4, 5, 6])
def test_row_top_at_the_path_edges(kk):
    """E = kk .. kk + 9 (every remainder of the 4-wide kk = 1 scan) and E around the tuning's
    register limit on all-equal, increasing, decreasing and seeded rows, the last 200 rows of
    drifting scale (a guess from some rows misses others)."""
    rng = np.random.default_rng(kk)
    for e in [*range(kk, kk + 10), _REGISTER_MAX_E, _REGISTER_MAX_E + 1]:
        ramp = np.arange(e, dtype=np.float64)
        _row_top_rows(np.stack([np.full(e, 3.0), ramp, ramp[::-1], -ramp]), kk, np.int64)
        drift = rng.normal(size=(200, e)) * np.linspace(0.01, 100.0, 200)[:, None]
        drift[::5] = np.round(drift[::5])
        _row_top_rows(drift, kk, np.int64)


@pytest.mark.parametrize("kk", [2, 3, 4])
def test_row_top_register_path_on_every_row_of_signed_zeros(kk):
    """Every row over {-inf, -0.0, +0.0, 1.0} of width kk .. kk + 3 (the forced fill alone, then
    past it): the register path's indices are a stable argsort's and its values the indexed
    entries' own bits, though +0.0 and -0.0 compare equal and -inf never beats an empty slot."""
    alphabet = np.array([-np.inf, -0.0, 0.0, 1.0])
    for e in range(kk, kk + 4):
        codes = np.indices((alphabet.size,) * e).reshape(e, -1).T
        _row_top_rows(alphabet[codes], kk, np.int64)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 72), st.integers(1, 40), st.data())
def test_cols_top_equals_row_top_row_by_row(e, n, data):
    """cols_top on the transposed batch selects, row by row, what row_top selects on s[i] + w:
    the same indices and the same value bits, on scores and shifts from small sets (ties in
    nearly every row, signed zeros, infinite scores) or wide floats; kk = 1..4 (and kk = E)."""
    kk = data.draw(st.integers(1, min(e, 4)), label="kk")
    elements = data.draw(
        st.sampled_from(
            [st.sampled_from(_TIES), st.sampled_from([-1.0, 0.0, 1.0]), st.floats(-1e6, 1e6)]
        )
    )
    s = data.draw(hnp.arrays(np.float64, (n, e), elements=elements), label="s")
    w = data.draw(
        hnp.arrays(np.float64, e, elements=st.sampled_from([-0.5, -0.0, 0.0, 1.0])), label="w"
    )
    vals = np.full((kk, n), np.nan)  # whatever the scratch holds is overwritten
    idx = np.full((kk, n), -1, dtype=np.int64)
    cols_top(np.ascontiguousarray(s.T), w, kk, vals, idx)
    rv = np.empty(kk)
    ri = np.empty(kk, dtype=np.int64)
    cand = np.empty(e + 1, dtype=np.int64)
    for i in range(n):
        r = s[i] + w
        row_top(r, kk, rv, ri, cand, -np.inf, e <= _REGISTER_MAX_E)
        np.testing.assert_array_equal(idx[:, i], ri)
        np.testing.assert_array_equal(vals[:, i].view(np.uint64), rv.view(np.uint64))


@pytest.mark.parametrize("kk", [1, 2, 3, 4])
def test_cols_top_at_the_fill_edges(kk):
    """E = kk .. kk + 3 (the forced fill alone, then one column past it) on all-equal,
    increasing, decreasing and all -inf rows, against a stable argsort."""
    for e in range(kk, kk + 4):
        ramp = np.arange(e, dtype=np.float64)
        s = np.stack([np.full(e, 3.0), ramp, ramp[::-1], -ramp, np.full(e, -np.inf)])
        vals = np.empty((kk, s.shape[0]))
        idx = np.empty((kk, s.shape[0]), dtype=np.int64)
        cols_top(np.ascontiguousarray(s.T), np.zeros(e), kk, vals, idx)
        for i, r in enumerate(s):
            ref = np.argsort(-r, kind="stable")[:kk]
            np.testing.assert_array_equal(idx[:, i], ref)
            np.testing.assert_array_equal(vals[:, i], r[ref])


@settings(max_examples=100, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=20),
        elements=st.sampled_from([0.0, -1.5, 2 * MAGNITUDE_LIMIT, -np.inf, np.nan, 1e150]),
    )
)
def test_transpose_checked_transposes_and_checks_the_domain(s):
    sT = np.empty(s.shape[::-1])
    inside = transpose_checked(s, MAGNITUDE_LIMIT, sT)
    assert inside == bool(np.all(np.abs(s) <= MAGNITUDE_LIMIT))
    assert sT.tobytes() == np.ascontiguousarray(s.T).tobytes()


def test_kernel_rejects_bad_input():
    s = np.ones((3, 4))
    s_nan = s.copy()
    s_nan[1, 3] = np.nan
    with pytest.raises(ValueError, match="token 1, expert 3"):
        lfb.route(s_nan, 2, weights=False)
    s_inf = s.astype(np.float32)
    s_inf[2, 0] = -np.inf
    with pytest.raises(ValueError, match="finite"):
        lfb.route(s_inf, 2, weights=False)
    with pytest.raises(ValueError, match="k"):
        lfb.route(s, 5, weights=False)
    with pytest.raises(ValueError, match="bias"):
        lfb.route(s, 2, np.zeros(3), weights=False)
    with pytest.raises(ValueError, match="bias must be > 0"):
        lfb.route(s, 2, -np.ones(4), bias_mode="multiplicative", weights=False)
    with pytest.raises(ValueError, match="2-D"):
        lfb.route(np.ones(4), 2, weights=False)
    with pytest.raises(TypeError):
        lfb.route("scores", 2, weights=False)


def test_bench_kernel_target_runs_and_reports_identity():
    """Smoke test of ``lfb bench`` plumbing (no timing assertion: speed lives in benchmarks/)."""
    from lfbtheory.cli._checkout import checkout_dir
    from lfbtheory.cli.bench import _load_harness

    harness = _load_harness(checkout_dir("benchmarks", None, "lfb bench") / "harness.py")
    format_tables, run_bench = harness.format_tables, harness.run_bench

    result = run_bench(targets=(4,), repeats=1, log=lambda msg: None)
    (table,) = result["tables"]
    kernel = next(r for r in table["rows"] if r["method"] == "compiled kernel")
    assert kernel["identical"] and kernel["identical_with_ties"]
    assert "compiled kernel" in format_tables(result)
