"""The online loop: causality, accumulation, shards, evaluation, save/resume (online.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory.online import schedules, updates
from lfbtheory.online.loop import load_state, save_state, simulate


def _stream(seed, T=12, n=16, e=4):
    rng = np.random.default_rng(seed)
    pop = rng.normal(size=e)
    return [lfb.sigmoid(rng.normal(size=(n, e)) + pop) for _ in range(T)]


RULES = ["sign", "proportional", "centered_sign", "momentum", "adagrad", "multiplicative"]


@given(st.integers(0, 10**6), st.integers(0, 11), st.sampled_from(RULES))
def test_changing_batch_t_changes_nothing_routed_before_t(seed, t, rule):
    bs = _stream(seed)
    a = simulate(bs, 2, rule, 0.05)
    changed = list(bs)
    changed[t] = np.random.default_rng(seed + 1).random(bs[t].shape)
    b = simulate(changed, 2, rule, 0.05)
    np.testing.assert_array_equal(a.bias[: t + 1], b.bias[: t + 1])  # bias of t uses < t only
    np.testing.assert_array_equal(a.loads[:t], b.loads[:t])


def test_the_trajectory_records_the_bias_that_routed_each_batch():
    bs = _stream(0)
    tr = simulate(bs, 2, "sign", 1e-3)
    for b, bias, loads in zip(bs, tr.bias, tr.loads, strict=True):
        r = lfb.route(b, 2, bias)
        np.testing.assert_array_equal(r.loads, loads)
    np.testing.assert_array_equal(tr.bias[0], 0.0)
    s = updates.sign()
    np.testing.assert_array_equal(tr.bias[1], s.update(tr.loads[0], s.init(4, None), 1e-3).bias)


@given(st.integers(0, 10**6), st.integers(2, 4), st.sampled_from(RULES))
def test_micro_batches_equal_one_update_on_their_concatenation(seed, m, rule):
    bs = _stream(seed, T=3 * m)
    micro = simulate(bs, 2, rule, 0.05, micro_batches=m)
    concat = [np.concatenate(bs[i : i + m]) for i in range(0, len(bs), m)]
    whole = simulate(concat, 2, rule, 0.05)
    np.testing.assert_array_equal(micro.bias[::m], whole.bias)
    np.testing.assert_array_equal(micro.loads.reshape(3, m, -1).sum(1), whole.loads)
    np.testing.assert_array_equal(micro.state.rule.bias, whole.state.rule.bias)


@given(st.integers(0, 10**6), st.sampled_from([2, 4, 8]), st.sampled_from(RULES))
def test_shards_with_summed_loads_equal_one_process(seed, shards, rule):
    bs = _stream(seed)
    one = simulate(bs, 2, rule, 0.05)
    many = simulate(bs, 2, rule, 0.05, shards=shards)  # raises if replicas diverge
    np.testing.assert_array_equal(one.loads, many.loads)
    np.testing.assert_array_equal(one.bias, many.bias)


def test_evaluation_batches_leave_the_bias_untouched():
    bs = _stream(3)
    tr = simulate(bs, 2, "sign", 0.01, eval_batches=[2, 3, 7])
    np.testing.assert_array_equal(tr.bias[3], tr.bias[2])
    np.testing.assert_array_equal(tr.bias[4], tr.bias[3])
    assert np.isnan(tr.step[[2, 3, 7]]).all() and tr.is_eval[[2, 3, 7]].all()
    train_only = simulate([b for i, b in enumerate(bs) if i not in (2, 3, 7)], 2, "sign", 0.01)
    np.testing.assert_array_equal(tr.state.rule.bias, train_only.state.rule.bias)


@given(st.integers(0, 10**6), st.integers(1, 11), st.sampled_from(RULES), st.integers(1, 3))
@settings(max_examples=20)
def test_save_and_resume_is_bit_identical(tmp_path_factory, seed, cut, rule, m):
    bs = _stream(seed)
    sched = schedules.inverse(0.3)
    full = simulate(bs, 2, rule, sched, micro_batches=m)
    head = simulate(bs[:cut], 2, rule, sched, micro_batches=m)
    path = tmp_path_factory.mktemp("ckpt") / "state.npz"
    save_state(path, head.state)
    tail = simulate(bs[cut:], 2, rule, sched, micro_batches=m, state=load_state(path))
    np.testing.assert_array_equal(np.concatenate([head.bias, tail.bias]), full.bias)
    np.testing.assert_array_equal(tail.state.rule.bias, full.state.rule.bias)


def test_a_user_list_and_a_generator_work_as_streams():
    bs = _stream(5)
    a = simulate(bs, 2, updates.proportional(), schedules.inverse_sqrt(0.1))
    b = simulate((x for x in bs), 2, updates.proportional(), schedules.inverse_sqrt(0.1))
    np.testing.assert_array_equal(a.bias, b.bias)
    assert a.bias.shape == (12, 4) and a.loads.dtype == np.int64 and a.reward.shape == (12,)


def test_adaptive_streams_receive_the_bias_used_for_the_previous_batch():
    seen = []

    def adversary():
        bias = None
        for _ in range(5):
            bias = yield np.full((4, 4), 0.5) + (0 if bias is None else -bias)
            seen.append(np.copy(bias))

    tr = simulate(adversary(), 2, "sign", 0.1, adaptive=True)
    for t, b in enumerate(seen[:4]):
        np.testing.assert_array_equal(b, tr.bias[t])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rule": "nope"}, "rule must be one of"),
        ({"rule": 3}, "rule must be a lfbtheory.online.updates.Rule"),
        ({"micro_batches": 0}, "micro_batches must be a positive integer"),
        ({"shards": 3}, "not divisible by shards=3"),
        ({"k": 5}, r"k must be in \[1, E=4\]"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"batches": _stream(0, T=2), "k": 2, "rule": "sign", "step": 0.1} | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        simulate(**args)


def test_mismatched_batch_shapes_and_empty_streams():
    bs = _stream(0, T=2) + [np.ones((16, 5)) * 0.5]
    with pytest.raises(ValueError, match=r"batches\[2\] has E=5"):
        simulate(bs, 2, "sign", 0.1)
    with pytest.raises(ValueError, match="empty"):
        simulate([], 2, "sign", 0.1)
