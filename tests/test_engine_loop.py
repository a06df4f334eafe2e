"""The compiled online loop (lfbtheory._engine.loop) equals the reference loop bit for bit.

Every property runs ``simulate`` on each path (``_path="python"``: the reference loop;
``"rows"`` / ``"columns"``: the compiled loop routing row by row or on the transposed batch)
on the same input and compares every array of the Trajectory and of the final state by its
bytes, for every rule the public constructors build, any schedule, micro-batches, evaluation
batches and starting states; and a run over several rules equals the runs of each.
"""

from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory._engine import arith
from lfbtheory._engine import loop as engine_loop
from lfbtheory.online import schedules, updates
from lfbtheory.online.state import RouterState, freeze, init_state
from lfbtheory.online.updates import Rule
from lfbtheory.validation import MAGNITUDE_LIMIT

PATHS = ("python", "rows", "columns")


def _rules(rate):
    """One rule of every family the constructors build."""
    return {
        "sign": updates.sign(rate),
        "proportional": updates.proportional(rate),
        "multiplicative": updates.multiplicative(rate),
        "centered_sign": updates.centered(updates.sign(rate)),
        "centered_proportional": updates.centered(updates.proportional(rate)),
        "momentum_proportional": updates.momentum(rate, 0.9),
        "momentum_sign": updates.momentum(rate, 0.5, signal="sign"),
        "momentum_memoryless": updates.momentum(rate, 0.0),
        "centered_momentum": updates.centered(updates.momentum(rate, 0.7)),
        "adagrad": updates.adagrad(rate),
        "centered_adagrad": updates.centered(updates.adagrad(rate, 1e-3)),
    }


@contextmanager
def _spy():
    """Yields the mock wrapping the compiled loop: its call_count says whether it ran."""
    with mock.patch.object(engine_loop, "run", wraps=engine_loop.run) as spy:
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
    for a, b in zip(fs.rule, ss.rule, strict=True):
        if isinstance(a, np.ndarray):
            assert _same_bits(a, b)
        else:
            assert a == b and type(a) is type(b)
    assert _same_bits(fs.pending, ss.pending)
    assert (fs.n_pending, fs.frozen) == (ss.n_pending, ss.frozen)


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
    kind = draw(st.sampled_from(["normal", "integer", "float32", "zeros"]))
    batches = _scores(rng, kind, (t, n, e))
    rate = draw(st.sampled_from([1e-3, 0.05, 0.5]))
    family = draw(st.sampled_from(sorted(_rules(0.1))))
    sched = _schedule(
        draw(st.sampled_from(["constant", "inverse_sqrt", "inverse", "deepseek_v3", "user"])),
        rate,
    )
    rule = _rules(0.1)[family]._replace(step=sched)
    if rule.bias_mode == "multiplicative":
        batches = np.abs(batches) + 0.5  # select on s * b: positive gate scores
    micro = draw(st.sampled_from([1, 1, 2, 3]))
    start = draw(st.sampled_from(["fresh", "init_bias", "state"]))
    kwargs = {"micro_batches": micro}
    if start == "init_bias":
        b = _scores(rng, draw(st.sampled_from(["normal", "integer", "zeros"])), e)
        kwargs["init_bias"] = np.abs(b) + 0.5 if rule.bias_mode == "multiplicative" else b
    elif start == "state":
        fresh = rule.init(e)
        bias = np.abs(_scores(rng, "integer", e)) / 4 + (1 if rule.bias_mode != "additive" else 0)
        count = draw(st.integers(0, 5))
        rs = fresh._replace(bias=bias, count=np.int64(count) if count % 2 else count)
        n_pending = draw(st.integers(0, micro - 1))
        pending = rng.integers(0, 3, size=e) if n_pending else np.zeros(e, np.int64)
        kwargs["state"] = RouterState(rs, pending.astype(np.int64), n_pending, False)
    kwargs["eval_batches"] = draw(st.lists(st.integers(0, t), max_size=4, unique=True))
    return batches, k, rule, kwargs


@given(_cases())
@settings(max_examples=120, deadline=None)
def test_every_path_gives_the_same_trajectory_bit_for_bit(case):
    batches, k, rule, kwargs = case
    ref = lfb.simulate(batches, k, rule, _path="python", **kwargs)
    for path in ("rows", "columns"):
        with _spy() as spy:
            got = lfb.simulate(batches, k, rule, _path=path, **kwargs)
        assert spy.call_count == 1  # the compiled loop ran
        _assert_identical(got, ref)


@pytest.mark.parametrize("rule", [updates.sign(1e-3), updates.proportional(5.0)])
def test_the_threshold_carried_between_elements_never_changes_a_selection(rule):
    """The row kernel's threshold guess for element t comes from element t - 1 (speed only):
    elements whose scores jump (x10, -1e9 masks, ties) and a bias that jumps must route
    exactly as the reference loop routes them."""
    rng = np.random.default_rng(3)
    base = rng.normal(size=(6, 64, 64))
    base[1] *= 10.0  # the previous element's k-th values are far below this one's
    base[2] -= 50.0  # ... and far above
    base[3, :, :5] = -1e9  # masks
    base[4] = np.round(base[4])  # ties at the k-th value
    for path in ("rows", "python"):
        got = lfb.simulate(base, 6, rule, _path=path)
        if path == "rows":
            rows = got
    _assert_identical(rows, got)


@given(_cases(), st.integers(2, 4), st.integers(0, 2**32 - 1))
@settings(max_examples=30, deadline=None)
def test_several_rules_over_one_stream_equal_each_rule_alone(case, n_rules, seed):
    batches, k, rule, kwargs = case
    kwargs.pop("state", None)
    kwargs.pop("init_bias", None)
    rng = np.random.default_rng(seed)
    names = sorted(_rules(0.1))
    rules = [rule] + [
        _rules(float(rng.choice([1e-3, 0.05])))[str(rng.choice(names))] for _ in range(n_rules)
    ]
    if any(r.bias_mode == "multiplicative" for r in rules):
        batches = np.abs(batches) + 0.5
    together = lfb.simulate(batches, k, rules, **kwargs)
    assert isinstance(together, list) and len(together) == len(rules)
    for r, got in zip(rules, together, strict=True):
        _assert_identical(got, lfb.simulate(batches, k, r, _path="python", **kwargs))


def test_a_rule_built_by_hand_runs_compiled_like_the_constructors_rules():
    """Rules are data: no object identity decides the path, so a Rule written out field by
    field runs the compiled loop and gives the constructor's result."""
    batches = np.random.default_rng(2).normal(size=(20, 9, 5))
    by_hand = Rule("sign", schedules.constant(0.1), "additive", True, "none", 0.0, 0.0)
    assert by_hand == updates.centered(updates.sign(0.1))
    with _spy() as spy:
        tr = lfb.simulate(batches, 2, by_hand)
    assert spy.call_count == 1
    _assert_identical(tr, lfb.simulate(batches, 2, by_hand, _path="python"))


class _Subclass(Rule):
    pass


@pytest.mark.parametrize(
    "rule, kwargs",
    [
        (_Subclass(*updates.sign(0.1)), {}),  # its arithmetic could be overridden
        (updates.sign(0.1), {"n_groups": 5, "topk_groups": 2}),
        (updates.sign(0.1), {"state": freeze(init_state(updates.sign(0.1), 5))}),
    ],
)
def test_what_the_compiled_loop_does_not_do_takes_the_reference_loop(rule, kwargs):
    batches = np.random.default_rng(3).normal(size=(6, 10, 5))
    with _spy() as spy:
        lfb.simulate(batches, 2, rule, **kwargs)
    assert spy.call_count == 0


def _counting(rate):
    """A schedule that records every count it is called with."""
    calls = []

    def schedule(t):
        calls.append(t)
        return rate

    return schedule, calls


@pytest.mark.parametrize("micro", [1, 3])
def test_the_schedule_is_called_with_the_same_counts_in_the_same_order(micro):
    batches = np.random.default_rng(0).normal(size=(30, 5, 4))
    logs = []
    for path in PATHS:
        schedule, calls = _counting(0.1)
        lfb.simulate(
            batches, 2, updates.sign(schedule), eval_batches=[2, 3], micro_batches=micro,
            _path=path,
        )  # fmt: skip
        logs.append(calls)
    assert logs[0] == logs[1] == logs[2]
    assert logs[0] == list(range(28 // micro))  # once per update


def _outcome(path, *args, **kwargs):
    """(error type and message or None, progress calls) of one run."""
    seen = []
    try:
        lfb.simulate(*args, progress=seen.append, _path=path, **kwargs)
    except Exception as exc:
        return (type(exc), str(exc)), seen
    return None, seen


@pytest.mark.parametrize("at", [0, 3, engine_loop.CHUNK + 1])
@pytest.mark.parametrize("family", ["proportional", "centered_proportional", "multiplicative"])
def test_an_overflow_raises_the_same_error_after_the_same_batches(at, family):
    batches = np.random.default_rng(4).normal(size=(at + 5, 6, 8))
    rule = _rules(0.1)[family]._replace(step=lambda c: 1e308 if c == at else 1e-3)
    if rule.bias_mode == "multiplicative":
        batches, init = np.abs(batches) + 0.5, np.array([10.0] + [1.0] * 7)
    else:
        init = np.array([10.0] + [0.0] * 7)  # expert 0 takes every token: u * d_0 = -7e308
    outcomes = [_outcome(p, batches, 1, rule, init_bias=init) for p in PATHS]
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert outcomes[0][0] is not None and "overflowed" in outcomes[0][0][1]
    assert outcomes[0][1] == list(range(1, at + 1))


@pytest.mark.parametrize("at", [0, 2, engine_loop.CHUNK + 3])
@pytest.mark.parametrize("bad", [2 * MAGNITUDE_LIMIT, np.nan, -np.inf])
def test_a_score_outside_the_domain_raises_the_same_error_after_the_same_batches(at, bad):
    batches = np.random.default_rng(5).normal(size=(at + 4, 6, 4))
    batches[at, 3, 1] = bad
    batches[at + 2, 0, 0] = np.nan  # a later bad batch changes nothing
    outcomes = [_outcome(p, batches, 2, updates.sign(0.1)) for p in PATHS]
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert outcomes[0][0] is not None and outcomes[0][1] == list(range(1, at + 1))
    assert "token 3, expert 1" in outcomes[0][0][1] or "1e+150" in outcomes[0][0][1]


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
    outcomes = [_outcome(p, batches, 2, rule, eval_batches=[1]) for p in PATHS]
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert outcomes[0][0] is not None and outcomes[0][1] == list(range(1, at + 2))


@given(_cases(), st.integers(0, 11))
@settings(max_examples=30, deadline=None)
def test_wherever_the_compiled_part_stops_the_reference_loop_finishes_exactly(case, cut):
    """The hand-over (used when an element cannot be done exactly): stop the compiled part at
    element ``cut`` as a failing schedule would; the result is still the reference loop's."""
    batches, k, rule, kwargs = case
    cut = min(cut, batches.shape[0] - 1)
    real = engine_loop._step_sizes

    def stopping(step, check, count, n_pending, micro, is_eval, t0, t1):
        u, stop, after = real(step, check, count, n_pending, micro, is_eval, t0, t1)
        if t0 <= cut < stop:
            u[cut - t0 :] = np.nan
            return u, cut, after
        return u, stop, after

    seen = []
    with mock.patch.object(engine_loop, "_step_sizes", stopping):
        fast = lfb.simulate(batches, k, rule, progress=seen.append, **kwargs)
    _assert_identical(fast, lfb.simulate(batches, k, rule, _path="python", **kwargs))
    assert seen == list(range(1, batches.shape[0] + 1))


def test_progress_counts_elements_over_all_rules_in_order():
    t = 2 * engine_loop.CHUNK + 17
    batches = np.random.default_rng(8).normal(size=(t, 1, 3))
    seen = []
    with _spy() as spy:
        lfb.simulate(batches, 1, updates.sign(1e-3), eval_batches=[5], progress=seen.append)
    assert spy.call_count == 1
    assert seen == list(range(1, t + 1))
    seen = []
    lfb.simulate(batches, 1, [updates.sign(1e-3), updates.proportional(0.1)], progress=seen.append)
    assert seen[-1] == 2 * t and seen == sorted(seen)


def _lanes_by_the_definition(values):
    """The package's sum written from its definition (lfbtheory._engine.arith), in Python."""
    a = [float(v) for v in values]
    n = len(a)
    if n < 8:
        res = 0.0
        for v in a:
            res += v
        return res
    r = a[:8]
    m = n - n % 8
    for i in range(8, m):
        r[i % 8] += a[i]
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for v in a[m:]:
        res += v
    return 0.0 + res


@given(
    st.integers(0, 300).flatmap(
        lambda n: st.lists(
            st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=n, max_size=n
        )
    )
)
def test_the_package_sum_is_its_definition_bit_for_bit(values):
    a = np.array(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        want = _lanes_by_the_definition(values)
    assert _same_bits(np.float64(arith.total(a)), np.float64(want))


def test_the_package_exp_is_the_c_librarys():
    import math

    x = np.random.default_rng(0).normal(scale=20, size=2000)
    assert _same_bits(arith.exp(x), np.array([math.exp(v) for v in x]))


@pytest.mark.parametrize(
    "rules, match",
    [
        (3, r"^rule must be an lfbtheory\.updates\.Rule"),
        ([updates.sign(0.1), "sign"], r"^rule\[1\] must be an lfbtheory\.updates\.Rule"),
    ],
)
def test_rules_that_are_not_rules_raise_a_type_error_naming_them(rules, match):
    with pytest.raises(TypeError, match=match):
        lfb.simulate(np.zeros((2, 3, 4)), 2, rules)


def test_a_one_shot_iterator_is_read_once_for_every_rule():
    batches = np.random.default_rng(9).normal(size=(7, 6, 4))
    rules = [updates.sign(0.1), updates.proportional(0.2)]
    got = lfb.simulate(iter(list(batches)), 2, rules)
    for r, tr in zip(rules, got, strict=True):
        _assert_identical(tr, lfb.simulate(batches, 2, r, _path="python"))
