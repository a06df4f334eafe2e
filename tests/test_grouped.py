"""Group-limited dual, best response, repair and bracket against brute force on tiny instances.

Brute force: every token's feasible sets F (k experts inside <= M groups) are enumerated, and
every combination of them (n <= 4 tokens) with balanced loads gives OPT^G exactly; the
Lagrangian bound min_p D^G(p) is the LP over conv(F) per token, solved with HiGHS on all
columns.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory.analysis import grouped as G

# (E, G, M, k, n) with n k divisible by E and M < G (group-limited)
CONFIGS = [(6, 3, 2, 3, 2), (6, 3, 2, 3, 4), (6, 3, 1, 2, 3), (4, 2, 1, 2, 4), (6, 3, 2, 2, 3)]


def feasible_sets(e: int, ng: int, m: int, k: int) -> list[tuple[int, ...]]:
    g = e // ng
    return [x for x in itertools.combinations(range(e), k) if len({i // g for i in x}) <= m]


def brute_opt(s: np.ndarray, ng: int, m: int, k: int) -> float:
    n, e = s.shape
    cap = n * k // e
    sets = feasible_sets(e, ng, m, k)
    vals = np.array([[s[t, list(x)].sum() for x in sets] for t in range(n)])
    best = -np.inf
    for choice in itertools.product(range(len(sets)), repeat=n):
        loads = np.bincount(np.concatenate([sets[c] for c in choice]), minlength=e)
        if np.all(loads == cap):
            best = max(best, float(sum(vals[t, c] for t, c in enumerate(choice))))
    return best


def conv_lp(s: np.ndarray, ng: int, m: int, k: int) -> float:
    """max sum_t sum_X lam_tX s_t.X s.t. sum_X lam_tX = 1, sum_t sum_X lam_tX X = L 1."""
    from scipy.optimize import linprog

    n, e = s.shape
    cap = n * k // e
    sets = feasible_sets(e, ng, m, k)
    nx = len(sets)
    c = -np.array([s[t, list(x)].sum() for t in range(n) for x in sets])
    a_eq = np.zeros((n + e, n * nx))
    for t in range(n):
        a_eq[t, t * nx : (t + 1) * nx] = 1
        for j, x in enumerate(sets):
            a_eq[n + np.array(x), t * nx + j] = 1
    b_eq = np.concatenate([np.ones(n), np.full(e, cap)])
    res = linprog(c, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    assert res.status == 0
    return -float(res.fun)


def instance(draw, cfg):  # type: ignore[no-untyped-def]
    e, ng, m, k, n = cfg
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    s = lfb.sigmoid(rng.normal(size=(n, e)) * 2 + rng.normal(size=e))
    p = rng.normal(size=e) * draw(st.sampled_from([0.0, 0.1, 1.0]))
    return s, p


@st.composite
def instances(draw):  # type: ignore[no-untyped-def]
    cfg = draw(st.sampled_from(CONFIGS))
    s, p = instance(draw, cfg)
    return cfg, s, p


@settings(max_examples=40)
@given(instances())
def test_exact_best_response_is_the_brute_force_maximum(case):
    (e, ng, m, k, n), s, p = case
    ex, val = G.best_response(s, k, p, ng, m)
    sets = feasible_sets(e, ng, m, k)
    brute = np.array([max((s[t] + p)[list(x)].sum() for x in sets) for t in range(n)])
    np.testing.assert_allclose(val, brute, rtol=0, atol=1e-12)
    g = e // ng
    for t in range(n):  # the experts returned realise the value and are group-limited
        assert len(set(ex[t])) == k and len({i // g for i in ex[t]}) <= m
        assert abs((s[t] + p)[ex[t]].sum() - val[t]) <= 1e-12
    _, heur = G.heuristic_response(s, k, p, ng, m)
    assert np.all(heur <= val + 1e-12)  # the router's groups are one feasible choice


@settings(max_examples=30)
@given(instances())
def test_weak_duality_every_price_bounds_the_best_group_limited_assignment(case):
    (e, ng, m, k, n), s, p = case
    d, sub = G.group_dual(s, k, p, ng, m)
    assert d >= brute_opt(s, ng, m, k) - 1e-12
    assert abs(sub.sum()) < 1e-12  # loads - L sums to n k - E L = 0


@settings(max_examples=20)
@given(instances())
def test_bracket_orders_lower_opt_dual_lp_and_the_dual_is_the_conv_lp(case):
    (e, ng, m, k, n), s, _ = case
    br = G.group_bracket([s], k, ng, m)
    opt = brute_opt(s, ng, m, k)
    conv = conv_lp(s, ng, m, k)
    tol = 1e-9 * max(1.0, abs(conv))
    assert br.converged
    assert br.dual_lower <= br.dual_min + tol
    assert abs(br.dual_min - conv) <= tol and abs(br.dual_lower - conv) <= tol
    assert opt <= br.dual_min + tol and br.dual_lower <= br.lp_bound + tol
    if np.isfinite(br.lower):
        assert br.lower <= opt + 1e-12


@settings(max_examples=30)
@given(instances())
def test_repair_returns_a_balanced_group_limited_assignment(case):
    (e, ng, m, k, n), s, p = case
    cap = n * k // e
    ex, _ = G.best_response(s, k, p, ng, m)
    fixed = G.repair_group_limited(s, ex, ng, m, cap)
    if fixed is None:
        return  # abstained (documented); the bracket then reports NaN
    g = e // ng
    assert np.all(np.bincount(fixed.ravel(), minlength=e) == cap)
    for t in range(n):
        assert len(set(fixed[t])) == k and len({i // g for i in fixed[t]}) <= m


def test_repair_succeeds_on_a_moderate_instance_and_stays_below_the_dual():
    rng = np.random.default_rng(3)
    s = lfb.sigmoid(rng.normal(size=(64, 32)) + rng.normal(size=32))
    br = G.group_bracket([s[:32], s[32:]], 4, 8, 4)
    assert np.isfinite(br.lower) and br.lower <= br.dual_lower + 1e-9
    assert br.converged and br.dual_min - br.dual_lower <= 1e-9 * abs(br.dual_min)


def test_group_ledger_of_a_group_limited_run():
    rng = np.random.default_rng(1)
    bs = lfb.sigmoid(rng.normal(size=(4, 32, 16)) + rng.normal(size=16))
    tr = lfb.simulate(bs, 2, lfb.updates.sign(1e-2), n_groups=4, topk_groups=2)
    led = G.group_ledger(tr, bs, 2)
    assert np.all(led.heuristic_value <= led.dual_value + 1e-12)
    assert led.dual_regret >= -1e-9 * abs(led.bracket.dual_min)  # sum D(p_t) >= min sum D
    plain = dataclasses.replace(tr, routing=None)  # the same run, labelled not group-limited
    with pytest.raises(ValueError, match="group-limited"):
        G.group_ledger(plain, bs, 2)


def test_repair_may_empty_a_group_to_open_another():
    """k = 1, M = 1: every token on expert 0; balancing needs moves into the other group, which
    are admissible only because they vacate the token's group."""
    s = np.array([[1.0, 0.9, 0.5, 0.4]] * 4)
    ex = np.zeros((4, 1), dtype=np.int64)
    fixed = G.repair_group_limited(s, ex, 2, 1, 1)
    assert fixed is not None
    np.testing.assert_array_equal(np.sort(fixed.ravel()), [0, 1, 2, 3])
