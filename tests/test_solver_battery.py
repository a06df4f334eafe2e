"""The solver battery (lfbtheory.testing.solvers): every method passes it, wrong solvers fail it."""

import numpy as np
import pytest

import lfbtheory as lfb
from lfbtheory.lp import METHODS, resolve_capacity
from lfbtheory.testing.solvers import check_solver, instances, run_battery


def _method(name):
    return lambda s, k, cap: lfb.solve_balanced(s, k, capacity=cap, method=name)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_passes_the_battery(method):
    results = check_solver(_method(method))
    assert len(results) == len(instances()) and all(r.ok for r in results)


@pytest.mark.parametrize("inst", instances(), ids=lambda i: i.name)
def test_each_instance_is_certified_by_its_own_prices(inst):
    """Strong duality on the instance itself: D(prices) equals the stated optimum, and the
    prices lie in the dual domain (p <= 0 in the '<=' case)."""
    s = inst.scores.astype(np.float64)
    n, e = s.shape
    d = lfb.dual_objective(s, inst.k, inst.prices, capacity=inst.capacity)
    np.testing.assert_allclose(d, inst.optimum, rtol=0, atol=1e-12 * np.abs(s).max() * n)
    cap, equality = resolve_capacity(n, inst.k, e, inst.capacity)
    if not equality:
        assert np.all(inst.prices <= 0)


def test_a_solver_that_ignores_capacity_fails():
    """Plain top-k routing is infeasible wherever capacity binds."""
    failed = {r.name for r in run_battery(lambda s, k, cap: _topk_assignment(s, k)) if not r.ok}
    assert "le_capacity" in failed
    with pytest.raises(AssertionError, match="le_capacity"):
        check_solver(lambda s, k, cap: _topk_assignment(s, k))


def _topk_assignment(s, k):
    x = np.zeros(s.shape, dtype=np.int8)
    np.put_along_axis(x, lfb.route(s, k, weights=False).experts, 1, axis=1)
    return x


def test_wrong_prices_with_a_right_assignment_fail():
    """The battery checks the returned prices through D and the certificate, not only x."""

    class Result:
        def __init__(self, assignment, bias):
            self.assignment, self.bias = assignment, bias

    def solve(s, k, cap):
        res = lfb.solve_balanced(s, k, capacity=cap)
        bad = res.bias.copy()
        bad[0] -= 1.0 + 10 * np.abs(s).max()
        return Result(res.assignment, bad)

    failed = [r for r in run_battery(solve) if not r.ok]
    assert any("dual objective" in " ".join(r.problems) for r in failed)


def test_a_crashing_solver_is_reported_not_raised():
    def solve(s, k, cap):
        raise RuntimeError("boom")

    results = run_battery(solve)
    assert all(not r.ok and "boom" in r.problems[0] for r in results)


def test_plain_arrays_are_accepted():
    results = check_solver(lambda s, k, cap: lfb.solve_balanced(s, k, capacity=cap).assignment)
    assert all(r.ok for r in results)
