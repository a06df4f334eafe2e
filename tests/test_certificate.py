"""Nothing wrong is certified: the certificate under masked scores, outliers and wide scales.

The theorem checked (lfbtheory.lp.certificate): if ``certify(s, k, x, p).ok`` then
s.x >= OPT - tolerance, whatever prices p come with x; the tolerance comes from the assigned
entries and the price spread, so an expert masked with -1e9 that no token takes cannot loosen
it. OPT comes from an exact integer min-cost flow written here (OR-tools on integer scores:
no code shared with the package's solvers or its certificate).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lfbtheory as lfb

MASK = -1e9


def exact_optimum(s: np.ndarray, k: int) -> float:
    """max s.x over balanced 0/1 assignments, exactly, for integer-valued s (min-cost flow)."""
    from ortools.graph.python import min_cost_flow

    n, e = s.shape
    cap = n * k // e
    flow = min_cost_flow.SimpleMinCostFlow()
    for t in range(n):
        flow.set_node_supply(t, k)
        for j in range(e):
            flow.add_arc_with_capacity_and_unit_cost(t, n + j, 1, -int(s[t, j]))
    for j in range(e):
        flow.add_arc_with_capacity_and_unit_cost(n + j, n + e, cap, 0)
    flow.set_node_supply(n + e, -n * k)
    assert flow.solve() == flow.OPTIMAL
    return float(-flow.optimal_cost())


def masked_batch(rng: np.random.Generator, n: int, e: int, masks: int) -> np.ndarray:
    """Integer scores in [0, 256] with ``masks`` entries set to -1e9 (exact in float64), never
    more than e - k - 1 per token, so every token keeps a choice."""
    s = rng.integers(0, 257, size=(n, e)).astype(float)
    for _ in range(masks):
        t = int(rng.integers(n))
        free = np.flatnonzero(s[t] != MASK)
        if free.size > e // 2:
            s[t, rng.choice(free)] = MASK
    return s


def load_preserving_swaps(x: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """x with ``count`` exchanges: token t1 moves a -> b while token t2 moves b -> a (every load
    and every row sum unchanged, so the answer stays feasible)."""
    x = x.copy()
    n, e = x.shape
    done = 0
    for _ in range(50 * count):
        a, b = rng.choice(e, size=2, replace=False)
        t1 = np.flatnonzero((x[:, a] == 1) & (x[:, b] == 0))
        t2 = np.flatnonzero((x[:, b] == 1) & (x[:, a] == 0))
        if t1.size and t2.size:
            u, v = rng.choice(t1), rng.choice(t2)
            x[u, a], x[u, b], x[v, b], x[v, a] = 0, 1, 0, 1
            done += 1
            if done == count:
                break
    return x


def objective(s: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(s, where=x == 1))


def test_one_masked_entry_does_not_loosen_the_check():
    """A 64 x 8 batch, k = 2, one entry -1e9: the optimum is certified with a tolerance set
    by the ordinary entries, and an assignment 1-2% below it is refused with any prices."""
    rng = np.random.default_rng(0)
    s = rng.integers(0, 257, size=(64, 8)).astype(float)
    s[5, 3] = MASK
    opt = lfb.solve_balanced(s, 2)
    assert opt.objective == exact_optimum(s, 2)
    assert opt.certificate.tolerance < 1e-4  # n k rtol (256 + spread): not 1e9-sized
    worse = load_preserving_swaps(opt.assignment, rng, 6)
    loss = opt.objective - objective(s, worse)
    assert loss > opt.certificate.tolerance
    for p in (opt.bias, np.zeros(8), opt.bias + rng.normal(scale=1e-3, size=8)):
        assert not lfb.certify(s, 2, worse, p).ok
    assert lfb.optimal_prices(s, 2, worse) is None


@pytest.mark.parametrize("scale", [1.0, 2.0**-900, 2.0**400])
def test_the_corrupted_answer_battery_accepts_nothing_wrong(scale):
    """Batches with 0-30 masked entries (and the whole batch scaled by a power of two, so
    every value stays exact): every load-preserving swap, every single-token change and
    every answer that puts a token on a masked expert is refused when it is worse than the
    optimum by more than the stated tolerance (an infeasible one always), with the optimal
    prices, zero prices, perturbed prices and the prices optimal_prices finds (None)."""
    rng = np.random.default_rng(1)
    tried = accepted_wrong = 0
    for seed in range(12):
        n, e, k = 64, 8, 2
        s = masked_batch(np.random.default_rng([seed, 7]), n, e, masks=3 * seed)
        opt_value = exact_optimum(s, k)
        s = s * scale
        opt = lfb.solve_balanced(s, k)
        assert opt.objective == opt_value * scale
        answers = [load_preserving_swaps(opt.assignment, rng, c) for c in (1, 2, 5)]
        moved = opt.assignment.copy()  # one token moved to an expert it does not have
        t = int(rng.integers(n))
        on, off = np.flatnonzero(moved[t] == 1), np.flatnonzero(moved[t] == 0)
        moved[t, on[0]], moved[t, off[0]] = 0, 1
        answers.append(moved)
        plain = np.zeros_like(moved)  # top-k at price 0: slackness holds, loads are off
        np.put_along_axis(plain, lfb.route(s, k, normalize=False).experts, 1, axis=1)
        answers.append(plain)
        masked = np.argwhere(s == MASK * scale)
        if masked.size:  # a masked expert taken in a load-preserving exchange
            t, a = masked[0]
            b = int(np.flatnonzero(opt.assignment[t] == 1)[0])
            x = opt.assignment.copy()
            others = np.flatnonzero((x[:, a] == 1) & (x[:, b] == 0))
            if others.size:
                u = int(others[0])
                x[t, b], x[t, a], x[u, a], x[u, b] = 0, 1, 0, 1
                answers.append(x)
        for x in answers:
            loss = opt.objective - objective(s, x)
            for p in (opt.bias, np.zeros(e), opt.bias * (1 + 1e-6)):
                cert = lfb.certify(s, k, x, p)
                tried += 1
                if np.all(x.sum(axis=0) == n * k // e):  # D(p) by routing, independently
                    d = lfb.dual_objective(s, k, p)
                    assert abs(cert.dual_objective - d) <= 1e-9 * max(1.0, abs(d))
                if cert.ok and loss > cert.tolerance:
                    accepted_wrong += 1
            feasible = np.all(x.sum(axis=0) == n * k // e)
            if not feasible:  # an infeasible answer is never certified, better or worse
                assert not any(lfb.certify(s, k, x, p).ok for p in (opt.bias, np.zeros(e)))
            if feasible and loss > opt.certificate.tolerance:
                assert lfb.optimal_prices(s, k, x) is None
    assert tried > 100
    assert accepted_wrong == 0


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.sampled_from([(8, 4, 1), (12, 4, 2), (16, 8, 3), (24, 6, 2), (10, 5, 4)]),
    st.integers(0, 12),
    st.integers(0, 4),
    st.sampled_from(["optimal", "zero", "random", "shifted"]),
)
def test_a_passing_certificate_bounds_the_loss(seed, shape, masks, swaps, prices):
    """For any batch (masks included) and any feasible assignment with any prices: ok implies
    s.x >= OPT - tolerance; and prices returned by optimal_prices carry the same bound."""
    rng = np.random.default_rng(seed)
    n, e, k = shape
    s = masked_batch(rng, n, e, masks)
    opt_value = exact_optimum(s, k)
    opt = lfb.solve_balanced(s, k)
    assert opt.objective == opt_value
    x = load_preserving_swaps(opt.assignment, rng, swaps)
    p = {
        "optimal": opt.bias,
        "zero": np.zeros(e),
        "random": rng.normal(scale=50.0, size=e),
        "shifted": opt.bias + rng.normal(scale=1e-9, size=e),
    }[prices]
    cert = lfb.certify(s, k, x, p)
    if cert.ok:
        assert objective(s, x) >= opt_value - cert.tolerance
    q = lfb.optimal_prices(s, k, x)
    if q is not None:
        assert objective(s, x) >= opt_value - lfb.certify(s, k, x, q).tolerance


def test_masked_batches_are_solved_and_certified_by_every_method():
    """60 masked batches: the fast solver returns the exact optimum, certified (its prices
    re-derived from the assignment when its own arithmetic, relative to the -1e9 entries,
    misses the tolerance); the LP methods either return the exact optimum or refuse."""
    refused = 0
    for seed in range(60):
        rng = np.random.default_rng([seed, 3])
        s = masked_batch(rng, 32, 8, masks=int(rng.integers(1, 12)))
        best = exact_optimum(s, 2)
        assert lfb.solve_balanced(s, 2).objective == best
        if seed % 10 == 0:
            try:
                assert lfb.solve_balanced(s, 2, method="linprog").objective == best
            except lfb.lp.CertificationError:
                refused += 1  # HiGHS' absolute tolerances next to 1e9: refused, never wrong
    assert refused <= 6


def test_expert_lists_that_repeat_an_expert_are_refused_even_with_balanced_loads():
    """Tokens listing [a, a] and [b, b] instead of [a, b] twice keep every load; the lists
    are still not an assignment (an expert twice for one token) and are refused."""
    from lfbtheory.lp.certificate import verdict_of_experts

    s = np.array(
        [[3.0, 2.0, 0.0, 0.0], [2.0, 3.0, 0.0, 0.0], [0.0, 0.0, 3.0, 2.0], [0.0, 0.0, 2.0, 3.0]]
    )
    opt = lfb.solve_balanced(s, 2)
    lists = opt.experts.copy()
    ok = verdict_of_experts(s, 2, lists, opt.bias, 2, True, 1e-9)
    assert ok.ok
    lists[0], lists[1] = [0, 0], [1, 1]  # was {0, 1} and {0, 1}: the same loads
    bad = verdict_of_experts(s, 2, lists, opt.bias, 2, True, 1e-9)
    assert not bad.ok and "distinct" in " ".join(bad.problems)


def test_a_negative_price_on_an_expert_with_room_is_refused():
    """The "<=" case: an expert below capacity must have price 0 (complementary slackness);
    a price of -0.5 there breaks the certificate even though every token is top-k."""
    s = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.5]])
    opt = lfb.solve_balanced(s, 1, capacity=2)
    assert opt.certificate.ok
    room = np.flatnonzero(opt.loads < 2)
    assert room.size
    p = opt.bias.copy()
    p[room[0]] = -0.5
    x = opt.assignment
    cert = lfb.certify(s, 1, x, p, capacity=2)
    assert not cert.ok and "room" in " ".join(cert.problems)
