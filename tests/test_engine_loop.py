"""The fused compiled loop (lfbtheory._engine.loop) equals the Python loop bit for bit.

Every property runs ``simulate`` (which takes the fused path when it applies, checked with a
spy on ``_fused.run``) against ``loop._python_loop`` (the Python loop, called directly) on the
same input, and compares every array of the Trajectory and of the final state by its bytes.
"""

from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory._engine import loop as _fused
from lfbtheory.online import loop, schedules, updates
from lfbtheory.online.state import RouterState, freeze, init_state
from lfbtheory.online.updates import BiasState, Rule, make_rule
from lfbtheory.validation import MAGNITUDE_LIMIT

FUSED_RULES = ["sign", "proportional", "centered_sign", "centered_proportional"]


def _python(batches, k, rule, *, init_bias=None, state=None, eval_batches=(), progress=None):
    """The Python loop on the arguments simulate would pass it (micro_batches=1, no groups)."""
    return loop._python_loop(
        batches,
        loop._prevalidated(batches) is not None,
        k,
        rule,
        state,
        init_bias,
        1,
        set(eval_batches),
        False,
        (None, None, 2),
        progress,
    )


@contextmanager
def _spy():
    """Yields the mock wrapping ``_fused.run``: its call_count says whether simulate fused."""
    with mock.patch.object(_fused, "run", wraps=_fused.run) as spy:
        yield spy


def _same_bits(a, b):
    """True when the two arrays have equal dtype, shape and bytes (so -0.0 != 0.0)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _assert_identical(fast, slow):
    for name in ("bias", "loads", "reward", "step", "is_eval"):
        assert _same_bits(getattr(fast, name), getattr(slow, name)), name
    assert (fast.rule, fast.bias_mode, fast.k, fast.micro_batches, fast.routing) == (
        slow.rule,
        slow.bias_mode,
        slow.k,
        slow.micro_batches,
        slow.routing,
    )
    fs, ss = fast.state, slow.state
    assert type(fs.rule) is type(ss.rule)
    assert _same_bits(fs.rule.bias, ss.rule.bias)
    assert fs.rule.count == ss.rule.count and type(fs.rule.count) is type(ss.rule.count)
    assert _same_bits(fs.pending, ss.pending)
    assert (fs.n_pending, fs.frozen) == (ss.n_pending, ss.frozen) == (0, False)


def _scores(rng, kind, shape):
    """Scores with ties: 'normal', 'integer' (few distinct values), 'float32' (rounded), or
    'zeros' (+-0.0 and +-1, so signed zeros reach every sum and comparison)."""
    if kind == "normal":
        return rng.normal(size=shape)
    if kind == "integer":
        return rng.integers(-2, 3, size=shape).astype(np.float64)
    if kind == "float32":
        return rng.normal(size=shape).astype(np.float32).astype(np.float64)
    return rng.choice(np.array([-0.0, 0.0, 1.0, -1.0]), size=shape)


def _schedule(name, rate):
    if name == "constant":
        return schedules.constant(rate)
    if name == "inverse_sqrt":
        return schedules.inverse_sqrt(rate)
    if name == "inverse":
        return schedules.inverse(rate)
    if name == "deepseek_v3":
        return schedules.deepseek_v3(rate, stop_step=3)
    return lambda t: rate * (1 + t % 3) / 3  # a user callable


@st.composite
def _cases(draw):
    e = draw(st.integers(1, 64))
    k = draw(st.integers(1, e))
    n = draw(st.sampled_from([1, 2, 3, 7, 16, 40]))
    t = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batches = _scores(
        rng, draw(st.sampled_from(["normal", "integer", "float32", "zeros"])), (t, n, e)
    )
    rate = draw(st.sampled_from([1e-3, 0.05, 0.5, 2.0]))
    rule = make_rule(
        draw(st.sampled_from(FUSED_RULES)),
        _schedule(
            draw(st.sampled_from(["constant", "inverse_sqrt", "inverse", "deepseek_v3", "user"])),
            rate,
        ),
    )
    start = draw(st.sampled_from(["fresh", "init_bias", "state"]))
    kwargs = {}
    if start == "init_bias":
        kwargs["init_bias"] = _scores(rng, draw(st.sampled_from(["normal", "integer", "zeros"])), e)
    elif start == "state":
        count = draw(st.integers(0, 5))
        pending = rng.integers(0, 3, size=e) if draw(st.booleans()) else np.zeros(e, np.int64)
        kwargs["state"] = RouterState(
            BiasState(_scores(rng, "integer", e) / 4, np.int64(count) if count % 2 else count),
            pending.astype(np.int64),
            0,
            False,
        )
    kwargs["eval_batches"] = draw(st.lists(st.integers(0, t), max_size=4, unique=True))
    return batches, k, rule, kwargs


@given(_cases())
def test_the_fused_loop_equals_the_python_loop_bit_for_bit(case):
    batches, k, rule, kwargs = case
    with _spy() as spy:
        fast = lfb.simulate(batches, k, rule, **kwargs)
    assert spy.call_count == 1
    _assert_identical(fast, _python(batches, k, rule, **kwargs))


@given(st.integers(0, 2**32 - 1), st.sampled_from(FUSED_RULES))
@settings(max_examples=10)
def test_a_stream_longer_than_one_chunk_non_contiguous_and_read_only_equals_the_python_loop(
    seed, name
):
    rng = np.random.default_rng(seed)
    t = _fused.CHUNK + 45
    batches = rng.normal(size=(t, 8, 2, 6))[:, :, 1, ::-1]  # (t, 8, 6), not contiguous
    batches.setflags(write=False)
    rule = make_rule(name, schedules.inverse_sqrt(0.2))
    with _spy() as spy:
        fast = lfb.simulate(batches, 2, rule, eval_batches=[0, _fused.CHUNK, t - 1])
    assert spy.call_count == 1
    _assert_identical(fast, _python(batches, 2, rule, eval_batches=[0, _fused.CHUNK, t - 1]))


def _counting(rate):
    """A schedule that records every count it is called with."""
    calls = []

    def schedule(t):
        calls.append(t)
        return rate

    return schedule, calls


def test_the_schedule_is_called_with_the_same_counts_in_the_same_order():
    batches = np.random.default_rng(0).normal(size=(30, 5, 4))
    logs = []
    for run in (lfb.simulate, _python):
        schedule, calls = _counting(0.1)
        run(batches, 2, updates.sign(schedule), eval_batches=[2, 3])
        logs.append(calls)
    assert logs[0] == logs[1]
    assert logs[0] == list(range(28))  # once per update


def _impostor(rate=0.1):
    """A rule NAMED "sign" whose direction is the opposite of sign's (moves toward overload)."""
    sign = updates.sign(rate)
    return Rule("sign", sign.step, lambda c, state: (-np.sign(c.mean() - c), state), BiasState)


def test_a_user_rule_named_sign_with_its_own_direction_takes_the_python_loop():
    batches = np.random.default_rng(1).normal(size=(20, 9, 5))
    rule = _impostor()
    with _spy() as spy:
        tr = lfb.simulate(batches, 2, rule)
    assert spy.call_count == 0
    b = np.zeros(5)  # its own result, from the public router
    for s, bias, loads in zip(batches, tr.bias, tr.loads, strict=True):
        assert _same_bits(bias, b)
        c = lfb.route(s, 2, b, normalize=False).loads
        assert _same_bits(loads, c)
        b = b - 0.1 * np.sign(c.mean() - c)
    assert not _same_bits(tr.bias, lfb.simulate(batches, 2, updates.sign(0.1)).bias)


def test_a_rule_is_fused_by_its_direction_object_whatever_its_name():
    batches = np.random.default_rng(2).normal(size=(20, 9, 5))
    named = updates.sign(0.1)._replace(name="my rule")
    with _spy() as spy:
        tr = lfb.simulate(batches, 2, named)
    assert spy.call_count == 1
    _assert_identical(tr, _python(batches, 2, named))


class _Subclass(Rule):
    pass


@pytest.mark.parametrize(
    "rule, kwargs",
    [
        (_Subclass(*updates.sign(0.1)), {}),  # advance could be overridden
        (updates.centered(updates.centered(updates.sign(0.1))), {}),
        (make_rule("momentum", 0.1), {}),
        (make_rule("multiplicative", 0.1), {}),
        (updates.sign(0.1), {"micro_batches": 2}),
        (updates.sign(0.1), {"n_groups": 5, "topk_groups": 2}),
        (updates.sign(0.1), {"state": freeze(init_state(updates.sign(0.1), 5))}),
    ],
)
def test_other_rules_and_options_take_the_python_loop(rule, kwargs):
    batches = np.random.default_rng(3).normal(size=(6, 9, 5))
    with _spy() as spy:
        lfb.simulate(batches, 2, rule, **kwargs)
    assert spy.call_count == 0


def _outcome(run, *args, **kwargs):
    """(error type and message or None, progress calls) of one run."""
    seen = []
    try:
        run(*args, progress=seen.append, **kwargs)
    except Exception as exc:
        return (type(exc), str(exc)), seen
    return None, seen


@pytest.mark.parametrize("at", [0, 3, _fused.CHUNK + 1])
def test_an_overflow_raises_the_same_error_after_the_same_batches(at):
    batches = np.random.default_rng(4).normal(size=(at + 5, 6, 8))
    rule = updates.proportional(lambda c: 1e308 if c == at else 1e-3)
    init = np.array([10.0] + [0.0] * 7)  # expert 0 takes every token: u * d_0 = -7e308
    fast = _outcome(lfb.simulate, batches, 1, rule, init_bias=init)
    assert fast == _outcome(_python, batches, 1, rule, init_bias=init)
    assert fast[0] is not None and "overflowed" in fast[0][1]
    assert fast[1] == list(range(1, at + 1))


@pytest.mark.parametrize("at", [0, 2, _fused.CHUNK + 3])
@pytest.mark.parametrize("bad", [2 * MAGNITUDE_LIMIT, np.nan, -np.inf])
def test_a_score_outside_the_domain_raises_the_same_error_after_the_same_batches(at, bad):
    batches = np.random.default_rng(5).normal(size=(at + 4, 6, 4))
    batches[at, 3, 1] = bad
    batches[at + 2, 0, 0] = np.nan  # a later bad batch changes nothing
    rule = updates.sign(0.1)
    fast = _outcome(lfb.simulate, batches, 2, rule)
    assert fast == _outcome(_python, batches, 2, rule)
    assert fast[0] is not None and fast[1] == list(range(1, at + 1))
    assert "token 3, expert 1" in fast[0][1] or "1e+150" in fast[0][1]


@pytest.mark.parametrize("k", [0, 2])
def test_a_bad_first_batch_is_reported_before_a_bad_k_as_the_python_loop_does(k):
    batches = np.random.default_rng(5).normal(size=(3, 6, 4))
    batches[0, 1, 1] = np.nan
    fast = _outcome(lfb.simulate, batches, k, updates.sign(0.1))
    assert fast == _outcome(_python, batches, k, updates.sign(0.1))
    assert "batches[0] must be finite" in fast[0][1]


@pytest.mark.parametrize("bad", [float("nan"), -1.0, "x", ZeroDivisionError])
def test_a_schedule_that_fails_raises_the_same_error_after_the_same_batches(bad):
    at = 7

    def schedule(c):
        if c < at:
            return 0.01
        if bad is ZeroDivisionError:
            return 1 / 0
        return bad

    batches = np.random.default_rng(6).normal(size=(12, 6, 4))
    rule = updates.sign(schedule)
    fast = _outcome(lfb.simulate, batches, 2, rule, eval_batches=[1])
    assert fast == _outcome(_python, batches, 2, rule, eval_batches=[1])
    assert fast[0] is not None and fast[1] == list(range(1, at + 2))  # + the eval batch


@given(_cases(), st.integers(0, 11))
@settings(max_examples=30)
def test_wherever_the_fused_part_stops_the_python_loop_finishes_the_stream_exactly(case, cut):
    """The hand-over (used when a batch cannot be fused exactly): stop the fused part at batch
    ``cut`` as a failing schedule would; the result is still the Python loop's."""
    batches, k, rule, kwargs = case
    cut = min(cut, batches.shape[0] - 1)
    real = _fused.step_sizes

    def stopping(rule, count, is_eval, t0, t1):
        u, stop = real(rule, count, is_eval, t0, t1)
        return u, (cut if t0 <= cut < stop else stop)

    seen = []
    with mock.patch.object(_fused, "step_sizes", stopping):
        fast = lfb.simulate(batches, k, rule, progress=seen.append, **kwargs)
    _assert_identical(fast, _python(batches, k, rule, **kwargs))
    assert seen == list(range(1, batches.shape[0] + 1))


def test_progress_is_called_with_every_batch_count_in_order():
    t = 2 * _fused.CHUNK + 17
    batches = np.random.default_rng(8).normal(size=(t, 1, 3))
    seen = []
    with _spy() as spy:
        lfb.simulate(batches, 1, updates.sign(1e-3), eval_batches=[5], progress=seen.append)
    assert spy.call_count == 1
    assert seen == list(range(1, t + 1))


@given(
    st.integers(0, 1200).flatmap(
        lambda n: st.lists(
            st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=n, max_size=n
        )
    )
)
@settings(max_examples=50)
def test_the_compiled_sum_is_numpys_sum_bit_for_bit(values):
    a = np.array(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        assert _same_bits(np.float64(_fused._numpy_sum(a)), a.sum())


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 127, 128, 129, 136, 255, 256, 257, 1031, 9000])
def test_the_compiled_sum_splits_like_numpy_at_every_boundary(n):
    rng = np.random.default_rng(n)
    a = rng.normal(size=n) * 10.0 ** rng.uniform(-8, 8, size=n)
    assert _same_bits(np.float64(_fused._numpy_sum(a)), a.sum())


# ------------------------------------------------------------- several rules over one pass


def _rule(draw, rate):
    """A rule simulate fuses (any built-in direction, any schedule), or one it does not."""
    kind = draw(st.sampled_from([*FUSED_RULES, "momentum", "adagrad", "impostor"]))
    if kind == "impostor":
        return _impostor(rate)
    schedule = _schedule(
        draw(st.sampled_from(["constant", "inverse_sqrt", "inverse", "deepseek_v3", "user"])),
        rate,
    )
    if kind == "adagrad":
        return updates.adagrad(schedule)
    return make_rule(kind, schedule)


@st.composite
def _mixes(draw):
    e = draw(st.integers(2, 64))
    k = draw(st.integers(1, e))
    n = draw(st.sampled_from([1, 3, 16, 40]))
    t = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batches = _scores(
        rng, draw(st.sampled_from(["normal", "integer", "float32", "zeros"])), (t, n, e)
    )
    n_rules = draw(st.integers(1, 6))
    rules = [_rule(draw, draw(st.sampled_from([1e-3, 0.05, 0.5, 2.0]))) for _ in range(n_rules)]
    if draw(st.booleans()):  # the same Rule object twice
        rules.append(rules[0])
    return batches, k, rules


def _fusable(batches, rule):
    return _fused.eligible(batches, rule, init_state(rule, batches.shape[2]).rule, False)


@given(_mixes())
def test_simulate_runs_equals_simulate_per_rule_bit_for_bit(case):
    batches, k, rules = case
    with mock.patch.object(_fused, "run_many", wraps=_fused.run_many) as spy:
        got = lfb.online.simulate_runs(batches, k, rules)
    fusable = [r for r in rules if _fusable(batches, r)]
    assert spy.call_count == (1 if fusable else 0)  # one pass for every fusable rule
    if fusable:
        assert spy.call_args.args[2] == fusable
    assert len(got) == len(rules)
    for tr, rule in zip(got, rules, strict=True):
        _assert_identical(tr, lfb.simulate(batches, k, rule))


@given(_mixes(), st.integers(0, 11), st.integers(0, 6))
@settings(max_examples=30)
def test_a_run_handed_to_the_python_loop_leaves_every_result_exact(case, cut, which):
    """One rule's fused part stops at batch ``cut`` (as a failing schedule would stop it): its
    rest is the Python loop's, the other runs go on in the pass; all equal simulate's."""
    batches, k, rules = case
    cut = min(cut, batches.shape[0] - 1)
    target = rules[which % len(rules)]
    real = _fused.step_sizes

    def stopping(rule, count, is_eval, t0, t1):
        u, stop = real(rule, count, is_eval, t0, t1)
        return u, (cut if rule is target and t0 <= cut < stop else stop)

    seen = []
    with mock.patch.object(_fused, "step_sizes", stopping):
        got = lfb.online.simulate_runs(batches, k, rules, progress=seen.append)
    for tr, rule in zip(got, rules, strict=True):
        _assert_identical(tr, lfb.simulate(batches, k, rule))
    total = len(rules) * batches.shape[0]
    assert seen[-1] == total and all(0 < b - a for a, b in zip([0, *seen], seen, strict=False))


def _overflowing(at):
    """Proportional with u = 1e308 at count ``at``: on _skewed scores d_0 = -7, so it
    overflows there."""
    return updates.proportional(lambda c: 1e308 if c == at else 1e-3)


def _skewed(t, seed=9):
    """(t, 6, 8) scores whose expert 0 is every token's top choice (k = 1) throughout."""
    batches = np.random.default_rng(seed).normal(size=(t, 6, 8))
    batches[:, :, 0] += 50.0
    return batches


@pytest.mark.parametrize("at", [0, 3, _fused.CHUNK + 1])
def test_a_run_that_overflows_stops_alone_in_the_pass(at):
    batches = _skewed(at + 5)
    rules = [updates.sign(1e-3), _overflowing(at), updates.centered(updates.proportional(0.01))]
    states = [init_state(r, 8) for r in rules]
    heads = _fused.run_many(
        batches, 1, rules, [s.rule for s in states], [s.pending for s in states], set(), None
    )
    assert [h.stop for h in heads] == [at + 5, at, at + 5]
    for head, rule, state in zip(heads, rules, states, strict=True):
        alone = _fused.run(batches, 1, rule, state.rule, state.pending, set(), None)
        assert head.stop == alone.stop
        for name in ("bias", "loads", "reward", "step", "is_eval", "pending"):
            assert _same_bits(getattr(head, name), getattr(alone, name)), name
        assert _same_bits(head.rule_state.bias, alone.rule_state.bias)
        assert head.rule_state.count == alone.rule_state.count


def _list_of_simulates(batches, k, rules, progress=None):
    return [lfb.simulate(batches, k, r) for r in rules]


@pytest.mark.parametrize("position", [0, 1, 3])
def test_an_overflowing_run_raises_the_error_simulate_raises(position):
    """simulate_runs raises what [simulate(...) for rule in rules] raises: the error of the
    first rule whose simulate raises (here the overflow, wherever that rule stands)."""
    at = 4
    batches = _skewed(12)
    rules = [updates.sign(1e-3), updates.proportional(0.01), make_rule("momentum", 0.01)]
    rules.insert(position, _overflowing(at))
    err, seen = _outcome(lfb.online.simulate_runs, batches, 1, rules)
    assert err == _outcome(_list_of_simulates, batches, 1, rules)[0]
    assert err == _outcome(lfb.simulate, batches, 1, _overflowing(at))[0]
    assert err is not None and "overflowed" in err[1] and f"count {at}" in err[1]
    assert all(0 < b - a for a, b in zip([0, *seen], seen, strict=False))


@pytest.mark.parametrize("first", ["sign", "momentum"])
def test_a_score_outside_the_domain_raises_the_first_rules_error(first):
    batches = np.random.default_rng(10).normal(size=(9, 5, 4))
    batches[6, 2, 3] = np.inf
    rules = [make_rule(first, 0.01), updates.proportional(0.1), updates.sign(0.1)]
    err = _outcome(lfb.online.simulate_runs, batches, 2, rules)[0]
    assert err == _outcome(_list_of_simulates, batches, 2, rules)[0]
    assert err == _outcome(lfb.simulate, batches, 2, rules[0])[0]
    assert err is not None and "batches[6]" in err[1]


def _heads(batches, k, rules):
    states = [init_state(r, batches.shape[2]) for r in rules]
    return _fused.run_many(
        batches, k, rules, [s.rule for s in states], [s.pending for s in states], set(), None
    )


@given(_mixes(), st.integers(0, 12), st.sampled_from([np.nan, np.inf, 2 * MAGNITUDE_LIMIT]))
@settings(max_examples=60)
def test_column_routing_and_row_routing_give_the_same_runs(case, at, bad):
    """k <= 4 may be routed column-wise (each batch transposed and checked once for all runs)
    or row by row: the two paths give the same bits and the same stops, also when a score of
    batch ``at`` (if any) is outside the domain."""
    batches, k, rules = case
    rules = [r for r in rules if _fusable(batches, r)]
    if at < batches.shape[0]:
        batches[at, -1, at % batches.shape[2]] = bad
    with mock.patch.object(_fused, "column_routing", lambda k, e, n_runs: k <= 4):
        cols = _heads(batches, k, rules)
    with mock.patch.object(_fused, "column_routing", lambda k, e, n_runs: False):
        rows = _heads(batches, k, rules)
    for a, b in zip(cols, rows, strict=True):
        assert a.stop == b.stop == min(at, batches.shape[0])
        for name in ("bias", "loads", "reward", "step", "pending"):
            assert _same_bits(getattr(a, name), getattr(b, name)), name
        assert _same_bits(a.rule_state.bias, b.rule_state.bias)


@pytest.mark.parametrize("k", [0, 5, 2.5])
def test_a_bad_k_raises_what_simulate_raises(k):
    batches = np.random.default_rng(11).normal(size=(3, 5, 4))
    rules = [updates.sign(0.1), updates.proportional(0.1)]
    err = _outcome(lfb.online.simulate_runs, batches, k, rules)[0]
    assert err is not None and err == _outcome(lfb.simulate, batches, k, rules[0])[0]


def test_progress_counts_batches_over_all_runs():
    """The pass reports after each chunk, batch by batch (every fused run did it), then each
    rule simulate computes alone reports its own batches."""
    t = _fused.CHUNK + 10
    batches = np.random.default_rng(12).normal(size=(t, 4, 6))
    rules = [updates.sign(1e-3), make_rule("momentum", 0.01), updates.proportional(0.1)]
    seen = []
    lfb.online.simulate_runs(batches, 2, rules, progress=seen.append)
    assert seen == [2 * b for b in range(1, t + 1)] + list(range(2 * t + 1, 3 * t + 1))


def test_one_rule_reports_like_simulate_and_no_rule_gives_no_trajectory():
    batches = np.random.default_rng(13).normal(size=(20, 4, 6))
    seen = []
    (tr,) = lfb.online.simulate_runs(batches, 2, [updates.sign(1e-3)], progress=seen.append)
    _assert_identical(tr, lfb.simulate(batches, 2, updates.sign(1e-3)))
    assert seen == list(range(1, 21))
    assert lfb.online.simulate_runs(batches, 2, []) == []


def test_a_one_shot_iterator_is_read_once_for_every_rule():
    batches = np.random.default_rng(14).normal(size=(15, 4, 6))
    rules = [updates.sign(1e-3), updates.proportional(0.1)]
    got = lfb.online.simulate_runs(iter(list(batches)), 2, rules)
    for tr, rule in zip(got, rules, strict=True):
        _assert_identical(tr, lfb.simulate(batches, 2, rule))


@pytest.mark.parametrize(
    "rules, match",
    [
        (updates.sign(0.1), r"^rules must be an iterable of lfbtheory\.updates\.Rule, got Rule$"),
        (3, r"^rules must be an iterable"),
        ([updates.sign(0.1), "sign"], r"^rules\[1\] must be an lfbtheory\.updates\.Rule"),
    ],
)
def test_rules_that_are_not_rules_raise_a_type_error_naming_them(rules, match):
    with pytest.raises(TypeError, match=match):
        lfb.online.simulate_runs(np.zeros((2, 3, 4)), 2, rules)


def test_run_point_reports_progress_over_all_runs_and_times_each_run():
    import dataclasses as dc

    from lfbtheory.experiments.regret import RegretConfig, run_point

    config = dc.replace(RegretConfig(), n=32, n_experts=8, steps=40, num_checkpoints=5)
    seen = []
    results, _ = run_point(config, progress=seen.append)
    assert seen[-1] == len(config.runs) * config.steps
    assert all(0 < b - a for a, b in zip([0, *seen], seen, strict=False))
    assert all(r.seconds > 0 for r in results)
