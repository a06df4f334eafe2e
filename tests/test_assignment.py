"""The exact balanced assignment: integrality, strong duality, certificates, exact prices."""

import itertools

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

import lfbtheory as lfb
from lfbtheory.testing.strategies import balanced_instances, scores

LP = settings(max_examples=25, deadline=None)


def _random_balanced_assignment(n, e, k, rng):
    """A uniformly shuffled feasible assignment: expert slots dealt round-robin."""
    cap = n * k // e
    for _ in range(100):
        slots = rng.permutation(np.repeat(np.arange(e), cap)).reshape(n, k)
        if all(len(set(r)) == k for r in slots.tolist()):
            x = np.zeros((n, e), dtype=np.int8)
            np.put_along_axis(x, slots, 1, axis=1)
            return x
    return None


@LP
@given(balanced_instances(), st.sampled_from(["cvxpy", "linprog"]))
def test_optimum_is_integral_balanced_feasible_and_strongly_dual(inst, solver):
    s, k = inst.scores, inst.k
    n, e = s.shape
    opt = lfb.solve_balanced(s, k, method=solver)
    x = opt.assignment
    assert x.dtype == np.int8 and set(np.unique(x)) <= {0, 1}
    np.testing.assert_array_equal(x.sum(1), k)
    np.testing.assert_array_equal(x.sum(0), n * k // e)
    np.testing.assert_array_equal(opt.loads, x.sum(0))
    np.testing.assert_allclose(opt.objective, float((s * x).sum()), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        lfb.dual_objective(s, k, opt.bias), opt.objective, rtol=1e-8, atol=1e-8
    )
    assert lfb.certify(s, k, x, opt.bias).ok
    # experts lists the assignment's ones
    rebuilt = np.zeros_like(x)
    np.put_along_axis(rebuilt, opt.experts, 1, axis=1)
    np.testing.assert_array_equal(rebuilt, x)


@LP
@given(balanced_instances(), st.integers(0, 2**32 - 1))
def test_no_random_balanced_assignment_scores_higher(inst, seed):
    s, k = inst.scores, inst.k
    n, e = s.shape
    opt = lfb.solve_balanced(s, k)
    rng = np.random.default_rng(seed)
    for _ in range(20):
        x = _random_balanced_assignment(n, e, k, rng)
        if x is not None:
            assert (s * x).sum() <= opt.objective + 1e-9
            # weak duality at the optimal price for any feasible x
            assert (s * x).sum() <= lfb.dual_objective(s, k, opt.bias) + 1e-9


@LP
@given(scores(n=st.integers(1, 8), n_experts=st.integers(1, 4)), st.data())
def test_k1_agrees_with_hungarian_on_expanded_expert_slots(s, data):
    n, e = s.shape
    if n % e:
        s = s[: n - n % e] if n >= e else np.tile(s, (e, 1))
    n = s.shape[0]
    cap = n // e
    cost = -np.repeat(s, cap, axis=1)  # each expert expanded into cap slots
    rows, cols = linear_sum_assignment(cost)
    hungarian = -cost[rows, cols].sum()
    np.testing.assert_allclose(lfb.solve_balanced(s, 1).objective, hungarian, atol=1e-9)


def test_matches_exhaustive_enumeration_on_small_instances():
    rng = np.random.default_rng(7)
    for n, e, k in [(4, 2, 1), (4, 4, 2), (6, 3, 2), (3, 3, 2)]:
        s = rng.integers(-2, 3, size=(n, e)).astype(float)  # heavy ties
        cap = n * k // e
        best = -np.inf
        for choice in itertools.product(itertools.combinations(range(e), k), repeat=n):
            loads = np.bincount(np.array(choice).ravel(), minlength=e)
            if np.all(loads == cap):
                best = max(best, sum(s[t, list(c)].sum() for t, c in enumerate(choice)))
        assert lfb.solve_balanced(s, k).objective == pytest.approx(best, abs=1e-12)


@LP
@given(balanced_instances())
def test_biased_top_k_is_balanced_except_on_tied_tokens(inst):
    s, k = inst.scores, inst.k
    n, e = s.shape
    opt = lfb.solve_balanced(s, k)
    r = lfb.route(s, k, opt.bias, normalize=False)
    tied = lfb.tie_margin(s, k, opt.bias) <= 1e-7 * max(1.0, np.abs(s).max())
    # every untied token gets exactly its optimal experts' set
    for t in np.flatnonzero(~tied):
        assert set(r.experts[t].tolist()) == set(opt.experts[t].tolist())
    # so the imbalance is at most the number of tied tokens
    assert np.abs(r.loads - n * k // e).sum() <= 2 * k * tied.sum()


@LP
@given(balanced_instances(), st.data())
def test_certificate_rejects_perturbed_assignments_and_biases(inst, data):
    s, k = inst.scores, inst.k
    n, e = s.shape
    opt = lfb.solve_balanced(s, k)
    cert = lfb.certify(s, k, opt.assignment, opt.bias)
    assert cert.ok and abs(cert.duality_gap) <= 1e-7 * max(1, n)
    if k < e:
        # move one token's expert: load balance breaks
        x = opt.assignment.copy()
        t = data.draw(st.integers(0, n - 1))
        on, off = np.flatnonzero(x[t]), np.flatnonzero(x[t] == 0)
        x[t, on[0]], x[t, off[0]] = 0, 1
        assert not lfb.certify(s, k, x, opt.bias).ok
    x = opt.assignment.astype(float)
    x[0, 0] = 0.5
    assert not lfb.certify(s, k, x, opt.bias).ok
    # a bias far from any optimal price breaks complementary slackness
    if k < e and s.max() > s.min():
        bad = opt.bias.copy()
        bad[np.argmin(opt.loads)] += 10.0 * (1 + np.abs(s).max())
        assert not lfb.certify(s, k, opt.assignment, bad).ok


def test_certificate_rejects_a_swap_that_lowers_the_objective():
    s = np.array([[1.0, 0.0], [0.0, 1.0]])
    opt = lfb.solve_balanced(s, 1)
    swapped = 1 - opt.assignment
    c = lfb.certify(s, 1, swapped, opt.bias)
    assert c.primal_feasible and not c.complementary_slackness and not c.ok
    assert c.duality_gap == pytest.approx(2.0)


@LP
@given(balanced_instances())
def test_exact_prices_from_the_assignment_certify_it(inst):
    s, k = inst.scores, inst.k
    opt = lfb.solve_balanced(s, k, method="ssp")  # exact in floating point (see above)
    p = lfb.optimal_prices(s, k, opt.assignment)
    assert p is not None and lfb.certify(s, k, opt.assignment, p).ok
    np.testing.assert_allclose(lfb.dual_objective(s, k, p), opt.objective, atol=1e-9)


def test_exact_prices_refuse_a_suboptimal_assignment():
    s = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert lfb.optimal_prices(s, 1, np.array([[0, 1], [1, 0]])) is None


@LP
@given(
    scores(n=st.integers(1, 12), n_experts=st.integers(2, 5)),
    st.data(),
    st.sampled_from(["cvxpy", "linprog"]),
)
def test_capacity_with_slack(s, data, solver):
    n, e = s.shape
    k = data.draw(st.integers(1, e))
    lo = -(-n * k // e)
    cap = data.draw(st.integers(lo, lo + 3))
    opt = lfb.solve_balanced(s, k, capacity=cap, method=solver)
    assert np.all(opt.loads <= cap) and np.all(opt.assignment.sum(1) == k)
    if e * cap > n * k:  # slack: the multipliers of '<=' rows make the bias <= 0
        assert np.all(opt.bias <= 0)
    cert = lfb.certify(s, k, opt.assignment, opt.bias, capacity=cap)
    assert cert.ok, cert.problems
    np.testing.assert_allclose(
        lfb.dual_objective(s, k, opt.bias, capacity=cap), opt.objective, atol=1e-8
    )
    # The LP solvers are exact up to their tolerance (1e-10 for HiGHS), so exact prices are
    # recovered from the exact solver's assignment (ssp), which has no negative cycle.
    exact = lfb.solve_balanced(s, k, capacity=cap, method="ssp")
    assert exact.objective >= opt.objective - 1e-9
    p = lfb.optimal_prices(s, k, exact.assignment, capacity=cap)
    assert p is not None and lfb.certify(s, k, exact.assignment, p, capacity=cap).ok
    if e * cap > n * k:
        assert lfb.dual_objective(s, k, np.full(e, 1.0), capacity=cap) == np.inf


@LP
@given(balanced_instances(), st.data())
def test_dual_subgradient_is_load_minus_capacity_and_weak_duality_holds(inst, data):
    s, k = inst.scores, inst.k
    n, e = s.shape
    p = data.draw(st.lists(st.floats(-3, 3), min_size=e, max_size=e).map(np.array))
    g = lfb.dual_subgradient(s, k, p)
    r = lfb.route(s, k, p, normalize=False)
    np.testing.assert_array_equal(g, r.loads - n * k // e)
    # subgradient inequality D(q) >= D(p) + g.(q - p)
    q = data.draw(st.lists(st.floats(-3, 3), min_size=e, max_size=e).map(np.array))
    assert lfb.dual_objective(s, k, q) >= lfb.dual_objective(s, k, p) + g @ (q - p) - 1e-9
    assert lfb.dual_objective(s, k, p) >= lfb.solve_balanced(s, k).objective - 1e-9


@st.composite
def _instances_with_bias(draw):
    """(scores, k, bias) with L = n k / E integral; biases span many magnitudes (ties too)."""
    inst = draw(balanced_instances())
    e = inst.scores.shape[1]
    entry = st.one_of(
        st.sampled_from([0.0, 1.0, -1.0]),
        st.floats(-1e6, 1e6, allow_nan=False),
        st.floats(-1e-150, 1e-150, allow_nan=False),
    )
    return inst.scores, inst.k, np.array(draw(st.lists(entry, min_size=e, max_size=e)))


@LP
@given(_instances_with_bias())
@example((np.zeros((3, 6)), 2, np.array([0.0, 0.0, 0.0, 0.0, 1.0, 5.39e-188])))
def test_dual_subgradient_is_exactly_route_loads_minus_capacity(inst):
    """One selection everywhere: the dual's subgradient is route's loads - L on every input,
    ties and tiny bias differences included (D and route share routing.select_experts)."""
    s, k, p = inst
    n, e = s.shape
    g = lfb.dual_subgradient(s, k=k, bias=p)
    np.testing.assert_array_equal(g, lfb.route(s, k, p, normalize=False).loads - n * k // e)
    # D(p) is the top-k sum at that same selection
    sel = lfb.route(s, k, p, weights=False).experts
    top = np.take_along_axis(s + (p - p.max()), sel, axis=1).sum()
    np.testing.assert_allclose(
        lfb.dual_objective(s, k=k, bias=p), top - (n * k // e) * (p - p.max()).sum(), rtol=1e-12
    )


@pytest.mark.parametrize("c", [1e10, 1e16, -1e16])
def test_a_far_warm_start_is_recentred_and_the_answer_is_certified(c):
    """Prices are defined up to a constant: a warm start shifted by c gives the same optimum
    (before re-centring, c = 1e16 returned 49.96 labelled optimal instead of 55.80)."""
    s = np.random.default_rng(0).random((32, 8))
    ref = lfb.solve_balanced(s, 2, method="cvxpy")
    for warm in (np.full(8, c), np.where(np.arange(8) == 3, c, 0.0)):  # shift; one dead expert
        res = lfb.solve_balanced(s, 2, method="auto", warm_start=warm)
        np.testing.assert_allclose(res.objective, ref.objective, rtol=1e-12)
        assert res.status == "optimal" and res.certificate.ok
        assert lfb.certify(s, 2, res.assignment, res.bias).ok


@pytest.mark.parametrize("e", [32, 64, 256])
def test_exact_prices_and_flow_on_rank_one_scores(e):
    """Rank-1 scores a_t + c_i: every feasible assignment is optimal (all exchange cycles cost
    0), so rounding-level negative cycles must not be mistaken for improving ones."""
    rng = np.random.default_rng(e)
    n, k = 4 * e, 2
    s = rng.random((n, 1)) + rng.random((1, e))
    res = lfb.solve_balanced(s, k, method="flow")
    p = lfb.optimal_prices(s, k, res.assignment)
    assert p is not None and lfb.certify(s, k, res.assignment, p).ok
    # any feasible assignment is optimal, e.g. expert slots dealt round-robin
    x = np.zeros((n, e), dtype=np.int8)
    for t in range(n):
        x[t, [(k * t) % e, (k * t + 1) % e]] = 1
    q = lfb.optimal_prices(s, k, x)
    assert q is not None and lfb.certify(s, k, x, q).ok


def test_optimal_prices_refuse_an_assignment_that_is_not_a_feasible_0_1_matrix():
    s = np.random.default_rng(1).random((4, 2))
    with pytest.raises(ValueError, match="assignment must be a 0/1 matrix"):
        lfb.optimal_prices(s, 1, np.full((4, 2), 2))
    with pytest.raises(ValueError, match="k=1 ones per token"):
        lfb.optimal_prices(s, 1, np.ones((4, 2)))
    with pytest.raises(ValueError, match="loads == L=2"):
        lfb.optimal_prices(s, 1, np.array([[1, 0]] * 4))


@LP
@given(balanced_instances(), st.integers(-1000, 440))
def test_the_certificate_verdict_does_not_depend_on_the_units_of_the_scores(inst, j):
    """Relative tolerances: scaling scores and prices by 2^j (exact in float64) changes neither
    the solver's answer nor the certificate's verdict, down to scores of size 1e-300 (an
    absolute tolerance would accept any assignment there)."""
    s, k = inst.scores, inst.k
    c = 2.0**j
    opt = lfb.solve_balanced(s, k)
    scaled = lfb.solve_balanced(s * c, k)
    np.testing.assert_allclose(scaled.objective, opt.objective * c, rtol=1e-9, atol=0)
    assert lfb.certify(s * c, k, opt.assignment, opt.bias * c).ok
    n, e = s.shape
    if k < e:
        x = opt.assignment.copy()
        on, off = np.flatnonzero(x[0]), np.flatnonzero(x[0] == 0)
        x[0, on[0]], x[0, off[0]] = 0, 1  # breaks the loads, at every scale
        assert not lfb.certify(s * c, k, x, opt.bias * c).ok
    wrong = lfb.certify(s, k, 1 - opt.assignment, opt.bias) if 2 * k == e else None
    if wrong is not None:
        assert lfb.certify(s * c, k, 1 - opt.assignment, opt.bias * c).ok == wrong.ok


def test_auto_falls_back_to_a_certified_method_when_ssp_cannot_resolve_the_decision():
    """ssp prices at the batch's scale (here 1, from the -1 entry), so a decision of 1.3e-276
    is below its rounding; the certificate refuses its answer (no false pass) and "auto"
    returns the certified answer of another exact method instead."""
    s = np.array([[-1.0, 1.33189361e-276, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(lfb.lp.CertificationError):
        lfb.solve_balanced(s, 1, method="ssp")
    r = lfb.solve_balanced(s, 1)
    assert r.method in ("flow", "linprog") and r.certificate.ok
    assert r.objective == 1.33189361e-276 and r.experts[0, 0] == 1
