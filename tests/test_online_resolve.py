"""The causal online-LP rules: re-solving (follow the leader, sliding window, lag-1) and dual
mirror descent on prices -- causality, each against a direct computation, and the
dispatcher's refusal to run them compiled. Every check here is also run on a mutant it must
reject (a rule that peeks at the batch it routes, an off-by-one pool, a flipped update)."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory._engine import loop as engine_loop
from lfbtheory.lp import dual_objective, solve_balanced
from lfbtheory.lp.oracle import cvxpy_lp
from lfbtheory.online import updates as U
from lfbtheory.online.resolve import Resolve, ResolveState
from lfbtheory.online.state import init_state, optimizer_step, state_dict

NEW_RULES = {
    "ftl": U.follow_the_leader,
    "lag1": U.lag1,
    "window3": lambda: U.sliding_window(3),
    "mirror": lambda: U.mirror_descent(0.1),
}


def _stream(seed, t=8, n=8, e=4):
    rng = np.random.default_rng(seed)
    return lfb.sigmoid(rng.normal(size=(t, n, e)) + rng.normal(size=e))


def causality_violations(make, batches, k, t, seed):
    """Batches t, t+1, ... replaced by fresh ones: the indices s <= t whose routing bias
    changed (empty for a causal rule: the price of batch s depends on batches < s).
    ``make(stream)`` builds the rule run on ``stream`` (a mutant may read it)."""
    other = batches.copy()
    other[t:] = _stream(seed + 1000, *batches.shape)[t:]
    a = lfb.simulate(batches, k, make(batches)).bias
    b = lfb.simulate(other, k, make(other)).bias
    return [s for s in range(t + 1) if not np.array_equal(a[s], b[s])]


class _Peeking(Resolve):
    """Mutant: the pool that sets the price of batch c+1 includes batch c+1 itself (it reads
    the stream it was built with, one batch ahead) -- an off-by-one into the future."""

    __slots__ = ()
    stream: np.ndarray = np.empty(0)

    def observe(self, scores, state, k):
        c = state.count
        pool = self.stream[: c + 2].reshape(-1, state.bias.shape[0])
        nxt = Resolve.observe(self, scores, state, k)
        return nxt._replace(bias=solve_balanced(pool, k).bias)


@given(seed=st.integers(0, 2**16), t=st.integers(1, 6), name=st.sampled_from(sorted(NEW_RULES)))
def test_the_price_of_batch_t_does_not_depend_on_batch_t_or_later(seed, t, name):
    batches = _stream(seed)
    assert causality_violations(lambda _: NEW_RULES[name](), batches, 2, t, seed) == []


def test_the_causality_check_rejects_a_rule_that_peeks_at_the_batch_it_routes():
    def make(stream):
        return type("PeekingHere", (_Peeking,), {"__slots__": (), "stream": stream})(None)

    batches = _stream(7)
    assert causality_violations(make, batches, 2, 3, 7) == [3]  # batch 3's own price moved


def _is_optimal_price(pool, k, p):
    """D_pool(p) = OPT_pool, OPT from the cvxpy reference oracle (capacity |pool| k / E)."""
    n, e = pool.shape
    _, opt, _ = cvxpy_lp(pool, k, n * k // e, True)
    return abs(dual_objective(pool, k, p) - opt) <= 1e-7 * max(1.0, abs(opt))


def _pools(kind, batches, t):
    """The batches whose pooled optimum must price batch t (t >= 1) under each rule."""
    lo = {"ftl": 0, "lag1": t - 1, "window3": max(0, t - 3)}[kind]
    return batches[lo:t].reshape(-1, batches.shape[2])


@pytest.mark.parametrize("kind", ["ftl", "lag1", "window3"])
def test_each_re_solving_price_is_an_optimal_price_of_its_pool(kind):
    batches = _stream(3, t=7)
    tr = lfb.simulate(batches, 2, NEW_RULES[kind]())
    assert np.array_equal(tr.bias[0], np.zeros(4))  # p_1 = bias0
    for t in range(1, 7):
        assert _is_optimal_price(_pools(kind, batches, t), 2, tr.bias[t]), (kind, t)


@pytest.mark.parametrize(
    "spec, impostor", [("ftl", "window3"), ("lag1", "window3"), ("window3", "lag1")]
)
def test_the_direct_check_rejects_the_wrong_pool(spec, impostor):
    batches = _stream(3, t=7)
    tr = lfb.simulate(batches, 2, NEW_RULES[impostor]())
    ok = [_is_optimal_price(_pools(spec, batches, t), 2, tr.bias[t]) for t in range(1, 7)]
    assert not all(ok)


def test_follow_the_leader_across_buffer_growth_and_reused_states():
    # 70 batches: the prefix solver's buffer (64 batches) doubles and its chain restarts
    batches = _stream(5, t=70, n=4, e=4)
    tr = lfb.simulate(batches, 1, U.follow_the_leader())
    for t in (1, 63, 64, 65, 69):
        pool = batches[:t].reshape(-1, 4)
        opt = solve_balanced(pool, 1).objective
        assert abs(dual_objective(pool, 1, tr.bias[t]) - opt) <= 1e-9 * max(1, abs(opt)), t
    # a state advanced twice gives the same price both times (the solver is rebuilt)
    rule = U.follow_the_leader()
    s1 = rule.observe(batches[0], rule.init(4), 1)
    a = rule.observe(batches[1], s1, 1)
    b = rule.observe(batches[1], s1, 1)
    assert np.array_equal(a.bias, b.bias) and a.count == b.count == 2


def test_pool_solves_when_the_batch_size_changes():
    # batches of 8 then 4 tokens: the incremental chain (one n per buffer) gives way to pool
    # solves, still certified optima of the pool
    rng = np.random.default_rng(9)
    batches = [lfb.sigmoid(rng.normal(size=(n, 4))) for n in (8, 8, 4, 8, 4)]
    tr = lfb.simulate(batches, 1, U.follow_the_leader())
    for t in range(1, 5):
        pool = np.concatenate(batches[:t])
        opt = solve_balanced(pool, 1).objective
        assert abs(dual_objective(pool, 1, tr.bias[t]) - opt) <= 1e-9 * max(1, abs(opt))
    with pytest.raises(ValueError, match="re-solves the balanced LP"):
        lfb.simulate(_stream(9, t=3, n=6, e=4), 1, U.lag1())


def test_a_re_solving_step_pools_its_micro_batches():
    batches = _stream(11, t=6)
    tr = lfb.simulate(batches, 2, U.lag1(), micro_batches=2)
    assert np.array_equal(tr.bias[0], tr.bias[1])  # one step: one bias
    assert _is_optimal_price(batches[0:2].reshape(-1, 4), 2, tr.bias[2])
    assert _is_optimal_price(batches[2:4].reshape(-1, 4), 2, tr.bias[4])


def _mirror_by_hand(batches, k, u, sign=1.0):
    lam = np.ones(batches.shape[2])
    out = []
    for s in batches:
        out.append(-lam)
        c = lfb.route(s, k, -lam).loads.astype(np.float64)
        lam = lam * np.exp(sign * u * (c - c.mean()) / c.mean())
    return np.array(out)


def test_mirror_descent_is_multiplicative_weights_on_prices():
    batches = _stream(13, t=20)
    tr = lfb.simulate(batches, 2, U.mirror_descent(0.1))
    assert np.all(tr.bias < 0)
    assert np.allclose(tr.bias, _mirror_by_hand(batches, 2, 0.1), rtol=1e-12, atol=0)
    # the check rejects the flipped update (prices of overloaded experts falling)
    assert not np.allclose(tr.bias, _mirror_by_hand(batches, 2, 0.1, sign=-1.0))


@pytest.mark.parametrize("name", sorted(NEW_RULES))
@pytest.mark.parametrize("path", ["rows", "columns"])
def test_forcing_a_compiled_path_raises_and_the_default_never_compiles_them(name, path):
    batches = _stream(1)
    with pytest.raises(ValueError, match="reference loop only"):
        lfb.simulate(batches, 2, NEW_RULES[name](), _path=path)
    with mock.patch.object(engine_loop, "run", wraps=engine_loop.run) as spy:
        lfb.simulate(batches, 2, [NEW_RULES[name](), U.sign(0.1)])
    assert spy.call_count == 1  # the compiled pass ran for the sign rule only
    assert len(spy.call_args.args[5]) == 1


def test_resolve_rules_refuse_what_they_cannot_do():
    rule = U.lag1()
    with pytest.raises(ValueError, match="window"):
        U.sliding_window(0)
    with pytest.raises(TypeError, match="observe"):
        optimizer_step(rule, [init_state(rule, 4)])
    with pytest.raises(TypeError, match="checkpoint"):
        state_dict(rule, init_state(rule, 4))
    with pytest.raises(ValueError, match="past batches"):
        rule.check_state(ResolveState(np.zeros(4), 2, (), None))
    with pytest.raises(ValueError, match="< 0"):
        U.mirror_descent(0.1).init(4, np.ones(4))
    assert [r().name for r in NEW_RULES.values()] == [
        "follow_the_leader", "lag1", "window_3", "mirror_descent",
    ]  # fmt: skip
