"""The fast exact methods ("ssp", "flow", "auto") against the cvxpy reference oracle.

Every path must return the oracle's optimum (objective equal to 1e-9 relative) with a passing
certificate and no negative cycle in the expert exchange graph, on seeded and Hypothesis
instances: heavy ties, k = 1, k = E - 1, k = E, "<=" capacities that do not divide, tiny
shapes, and any warm start. No timing here (benchmarks/).
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory.routing import selection_scores
from lfbtheory.testing.strategies import balanced_instances, scores

LP = settings(max_examples=25, deadline=None)
FAST = ("ssp", "flow", "auto")


class _Vertex:
    """The cvxpy reference LP's rounded vertex, uncertified: HiGHS' tolerances are absolute,
    so on scores of a wide dynamic range its vertex can lose differences far below 1e-10 of
    the largest entry, which the certificate (relative to the assigned entries) then rejects;
    as an oracle for the optimum's value it is used as it comes."""

    def __init__(self, s, k, capacity):
        from lfbtheory.lp.oracle import cvxpy_lp, round_vertex

        n, e = s.shape
        cap, equality = lfb.lp.resolve_capacity(n, k, e, capacity)
        m = float(np.max(np.abs(s)))
        e2 = int(np.frexp(m)[1]) if m > 0 else 0
        sw = np.ldexp(s, -e2)
        x_lp, obj, _ = cvxpy_lp(sw, k, min(cap, n), equality)
        self.assignment = round_vertex(sw, k, min(cap, n), equality, x_lp, obj, "cvxpy")
        self.objective = float(np.sum(s, where=self.assignment == 1))


def _check_against_oracle(s, k, capacity, solver, oracle=None, warm_start=None):
    if oracle is None:
        oracle = _Vertex(s, k, capacity)
    res = lfb.solve_balanced(s, k, capacity=capacity, method=solver, warm_start=warm_start)
    n, e = s.shape
    x = res.assignment
    assert x.shape == (n, e) and x.dtype == np.int8
    np.testing.assert_array_equal(x.sum(axis=1), k)
    np.testing.assert_array_equal(res.loads, x.sum(axis=0))
    if capacity is None:
        np.testing.assert_array_equal(res.loads, n * k // e)
    else:
        assert res.loads.max() <= capacity
        if capacity * e > n * k:  # "<=": prices in the dual domain, 0 where there is room
            assert np.all(res.bias <= 0)
            assert np.all(res.bias[res.loads < capacity] == 0)
    # experts lists the assignment's ones, ranked by routing's selection scores at the bias
    rebuilt = np.zeros_like(x)
    np.put_along_axis(rebuilt, res.experts, 1, axis=1)
    np.testing.assert_array_equal(rebuilt, x)
    r = np.where(x == 1, selection_scores(s, res.bias), -np.inf)
    np.testing.assert_array_equal(res.experts, lfb.topk_indices(r, k))
    np.testing.assert_allclose(res.objective, float((s * x).sum()), rtol=1e-12, atol=1e-12)
    # No negative cycle in the expert exchange graph (tolerance 1e-9 * max|s|): exactly optimal.
    assert lfb.optimal_prices(s, k, x, capacity=capacity) is not None
    if lfb.optimal_prices(s, k, oracle.assignment, capacity=capacity) is not None:
        np.testing.assert_allclose(res.objective, oracle.objective, rtol=1e-9, atol=1e-9)
    else:
        # The oracle stops at HiGHS' 1e-7 optimality tolerance: on scores that differ by less
        # than that its vertex can be beaten (e.g. one score 1e-7, the rest 0); never by us.
        assert res.objective >= oracle.objective
    cert = lfb.certify(s, k, x, res.bias, capacity=capacity)
    assert cert.ok, cert.problems
    return res


@st.composite
def capped_instances(draw, max_n=20, max_experts=7):
    """Instances with an integer capacity L >= ceil(n*k/E), often with E*L > n*k ("<=")."""
    s = draw(scores(n=st.integers(1, max_n), n_experts=st.integers(1, max_experts)))
    n, e = s.shape
    k = draw(st.integers(1, e))
    need = -(-n * k // e)
    cap = draw(st.integers(need, need + 3))
    return s, k, cap


@LP
@given(balanced_instances(max_n=24, max_experts=8), st.sampled_from(FAST))
def test_fast_solvers_match_the_oracle_on_balanced_instances(inst, solver):
    _check_against_oracle(inst.scores, inst.k, None, solver)


@LP
@given(capped_instances(), st.sampled_from(FAST))
def test_fast_solvers_match_the_oracle_with_le_capacities(inst, solver):
    s, k, cap = inst
    _check_against_oracle(s, k, cap, solver)


@LP
@given(balanced_instances(max_n=24, max_experts=8), st.data())
def test_any_warm_start_gives_the_same_optimum(inst, data):
    s, k = inst.scores, inst.k
    e = s.shape[1]
    oracle = _Vertex(s, k, None)
    warm = data.draw(st.lists(st.floats(-50, 50, allow_nan=False), min_size=e, max_size=e))
    _check_against_oracle(s, k, None, "ssp", oracle, warm_start=np.array(warm))
    # the optimal prices themselves, and those prices shifted by a constant
    best = lfb.solve_balanced(s, k)
    _check_against_oracle(s, k, None, "ssp", oracle, warm_start=best.bias + 3.0)


def _workload(n, e, rng, ties=False):
    if ties:
        return rng.integers(-2, 3, size=(n, e)).astype(float)
    return rng.normal(size=(n, e)) + 0.5 * rng.normal(size=e)


@pytest.mark.parametrize(
    "n,e,k,capacity,ties",
    [
        (1, 1, 1, None, False),  # n = 1, E = 1
        (1, 5, 5, None, False),  # k = E
        (5, 5, 4, None, True),  # k = E - 1, ties
        (7, 5, 4, 6, False),  # "<=", n*k not divisible by E
        (3, 4, 1, 1, True),  # "<=" with one slot per expert
        (64, 8, 1, None, False),  # k = 1
        (64, 8, 7, None, True),  # k = E - 1, heavy ties
        (208, 16, 3, None, True),  # heavy ties, enough tokens for the gap pruning
        (300, 12, 2, 80, False),  # generous "<=" capacity: most experts have room
        (240, 12, 5, None, False),
        (120, 6, 6, 130, False),  # k = E with "<="
    ],
)
def test_seeded_edge_cases_match_the_oracle(n, e, k, capacity, ties):
    rng = np.random.default_rng([n, e, k, 4])
    s = _workload(n, e, rng, ties)
    for solver in FAST:
        _check_against_oracle(s, k, capacity, solver)


@pytest.mark.parametrize("seed", range(3))
def test_medium_instances_match_an_independent_exact_solver_and_warm_starts_agree(seed):
    """Large enough for the quantile passes, gap pruning and on-demand token offers.

    The reference is OR-tools' min-cost flow (exact, independent; cvxpy is too slow here);
    the negative-cycle check in the helper certifies exactness on its own.
    """
    rng = np.random.default_rng([seed, 44])
    n, e, k = 1024, 32, 4
    s = _workload(n, e, rng, ties=seed == 2)
    ref = lfb.solve_balanced(s, k, method="flow")
    cold = _check_against_oracle(s, k, None, "ssp", ref)
    # a warm start from a neighbouring batch of the same workload
    s2 = s + 0.05 * rng.normal(size=s.shape)
    ref2 = lfb.solve_balanced(s2, k, method="flow")
    _check_against_oracle(s2, k, None, "ssp", ref2, warm_start=cold.bias)
    # "<=" with a little room
    _check_against_oracle(
        s2,
        k,
        n * k // e + 3,
        "ssp",
        lfb.solve_balanced(s2, k, capacity=n * k // e + 3, method="flow"),
    )


def test_float32_and_non_contiguous_scores():
    rng = np.random.default_rng(5)
    s = _workload(96, 6, rng)
    ref = lfb.solve_balanced(s, 2, method="cvxpy")
    s_f = np.asfortranarray(s)
    res = lfb.solve_balanced(s_f, 2, method="ssp")
    np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-9)
    s32 = s.astype(np.float32)
    ref32 = lfb.solve_balanced(s32, 2, method="cvxpy")
    np.testing.assert_allclose(
        lfb.solve_balanced(s32, 2, method="ssp").objective, ref32.objective, rtol=1e-9
    )


def test_warm_start_is_validated():
    s = np.zeros((4, 2))
    with pytest.raises(ValueError, match="warm_start"):
        lfb.solve_balanced(s, 1, method="ssp", warm_start=np.zeros(3))
    with pytest.raises(ValueError, match="warm_start"):
        lfb.solve_balanced(s, 1, method="ssp", warm_start=[0.0, np.nan])


def test_pure_python_fallback_is_exact():
    """The same kernels run uncompiled (NUMBA_DISABLE_JIT=1) give the oracle's optimum."""
    code = textwrap.dedent(
        """
        import numpy as np
        import lfbtheory as lfb
        from lfbtheory.lp import resolve_capacity
        from lfbtheory._engine.ssp import ssp_solve
        rng = np.random.default_rng(3)
        for n, e, k, cap in [(40, 5, 2, None), (90, 6, 3, 50), (70, 7, 6, None)]:
            s = rng.integers(-2, 3, size=(n, e)).astype(float) + 0.1 * rng.normal(size=e)
            L, eq = resolve_capacity(n, k, e, cap)
            x, experts, bias, _ = ssp_solve(s, k, L, eq)
            ref = lfb.solve_balanced(s, k, capacity=cap, method="linprog")
            assert abs((s * x).sum() - ref.objective) <= 1e-9 * max(1, abs(ref.objective))
            assert lfb.certify(s, k, x, bias, capacity=cap).ok
        print("ok")
        """
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_wrong_answer_is_never_returned_as_optimal(monkeypatch):
    """If a method's assignment is feasible but not optimal, the front door's certificate
    refuses it with the measured duality gap instead of returning status 'optimal'."""
    import lfbtheory._engine.ssp as ssp

    s = np.random.default_rng(0).random((32, 8))
    good = ssp.ssp_solve

    def swapped(*args, **kwargs):  # a feasible but suboptimal answer: two tokens swap experts
        x, experts, bias, stats = good(*args, **kwargs)
        x = x.copy()
        a, b = np.flatnonzero(x[0] & ~x[1])[0], np.flatnonzero(x[1] & ~x[0])[0]
        x[0, a], x[0, b], x[1, a], x[1, b] = 0, 1, 1, 0
        return x, experts, bias, stats

    monkeypatch.setattr(ssp, "ssp_solve", swapped)
    with pytest.raises(lfb.lp.CertificationError, match="duality gap"):
        lfb.solve_balanced(s, 2, method="ssp")
