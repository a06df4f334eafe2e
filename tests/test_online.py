"""The online loop: causality, accumulation, evaluation, checkpoints and resume."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lfbtheory as lfb
from lfbtheory.online import CheckpointError, load_state, save_state, schedules, simulate, updates
from lfbtheory.online.updates import make_rule


def _stream(seed, T=12, n=16, e=4):
    rng = np.random.default_rng(seed)
    pop = rng.normal(size=e)
    return [lfb.sigmoid(rng.normal(size=(n, e)) + pop) for _ in range(T)]


RULES = ["sign", "proportional", "centered_sign", "momentum", "adagrad", "multiplicative"]


def R(name, step=0.05):
    return make_rule(name, step)


@given(st.integers(0, 10**6), st.integers(0, 11), st.sampled_from(RULES))
def test_changing_batch_t_changes_nothing_routed_before_t(seed, t, rule):
    bs = _stream(seed)
    a = simulate(bs, 2, R(rule))
    changed = list(bs)
    changed[t] = np.random.default_rng(seed + 1).random(bs[t].shape)
    b = simulate(changed, 2, R(rule))
    np.testing.assert_array_equal(a.bias[: t + 1], b.bias[: t + 1])  # bias of t uses < t only
    np.testing.assert_array_equal(a.loads[:t], b.loads[:t])


def test_the_trajectory_records_the_bias_that_routed_each_batch():
    bs = _stream(0)
    tr = simulate(bs, 2, updates.sign(1e-3))
    for b, bias, loads in zip(bs, tr.bias, tr.loads, strict=True):
        r = lfb.route(b, 2, bias)
        np.testing.assert_array_equal(r.loads, loads)
    np.testing.assert_array_equal(tr.bias[0], 0.0)
    s = updates.sign(1e-3)
    np.testing.assert_array_equal(tr.bias[1], s.update(tr.loads[0], s.init(4)).bias)


@given(st.integers(0, 10**6), st.integers(2, 4), st.sampled_from(RULES))
def test_micro_batches_equal_one_update_on_their_concatenation(seed, m, rule):
    bs = _stream(seed, T=3 * m)
    micro = simulate(bs, 2, R(rule), micro_batches=m)
    concat = [np.concatenate(bs[i : i + m]) for i in range(0, len(bs), m)]
    whole = simulate(concat, 2, R(rule))
    np.testing.assert_array_equal(micro.bias[::m], whole.bias)
    np.testing.assert_array_equal(micro.loads.reshape(3, m, -1).sum(1), whole.loads)
    np.testing.assert_array_equal(micro.state.rule.bias, whole.state.rule.bias)


def test_evaluation_batches_leave_the_bias_untouched():
    bs = _stream(3)
    tr = simulate(bs, 2, updates.sign(0.01), eval_batches=[2, 3, 7])
    np.testing.assert_array_equal(tr.bias[3], tr.bias[2])
    np.testing.assert_array_equal(tr.bias[4], tr.bias[3])
    assert np.isnan(tr.step[[2, 3, 7]]).all() and tr.is_eval[[2, 3, 7]].all()
    train = [b for i, b in enumerate(bs) if i not in (2, 3, 7)]
    train_only = simulate(train, 2, updates.sign(0.01))
    np.testing.assert_array_equal(tr.state.rule.bias, train_only.state.rule.bias)


@given(st.integers(0, 10**6), st.integers(1, 11), st.sampled_from(RULES), st.integers(1, 3))
@settings(max_examples=20)
def test_save_and_resume_is_bit_identical(tmp_path_factory, seed, cut, rule, m):
    bs = _stream(seed)
    r = R(rule, schedules.inverse(0.3))
    full = simulate(bs, 2, r, micro_batches=m)
    head = simulate(bs[:cut], 2, r, micro_batches=m)
    path = tmp_path_factory.mktemp("ckpt") / "state.npz"
    save_state(path, r, head.state, micro_batches=m)
    tail = simulate(bs[cut:], 2, r, micro_batches=m, state=load_state(path, r, micro_batches=m))
    np.testing.assert_array_equal(np.concatenate([head.bias, tail.bias]), full.bias)
    np.testing.assert_array_equal(tail.state.rule.bias, full.state.rule.bias)


def test_a_user_list_and_a_generator_work_as_streams():
    bs = _stream(5)
    a = simulate(bs, 2, updates.proportional(schedules.inverse_sqrt(0.1)))
    b = simulate((x for x in bs), 2, updates.proportional(schedules.inverse_sqrt(0.1)))
    np.testing.assert_array_equal(a.bias, b.bias)
    assert a.bias.shape == (12, 4) and a.loads.dtype == np.int64 and a.reward.shape == (12,)


def test_adaptive_streams_receive_the_bias_used_for_the_previous_batch():
    seen = []

    def adversary():
        bias = None
        for _ in range(5):
            bias = yield np.full((4, 4), 0.5) + (0 if bias is None else -bias)
            seen.append(np.copy(bias))

    tr = simulate(adversary(), 2, updates.sign(0.1), adaptive=True)
    for t, b in enumerate(seen[:4]):
        np.testing.assert_array_equal(b, tr.bias[t])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rule": "sign"}, "rule must be an lfbtheory.updates.Rule"),
        ({"rule": 3}, "rule must be an lfbtheory.updates.Rule"),
        ({"micro_batches": 0}, "micro_batches must be a positive integer"),
        ({"k": 5}, r"k must be in \[1, E=4\]"),
        ({"eval_batches": [1.5]}, "eval_batches must hold integers"),
        ({"eval_batches": [True]}, "eval_batches must hold integers"),
        ({"eval_batches": [-1]}, "eval_batches must hold integers >= 0"),
        ({"batches": [np.ones((4, 4))], "adaptive": True}, "adaptive=True needs a generator"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"batches": _stream(0, T=2), "k": 2, "rule": updates.sign(0.1)} | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        simulate(**args)


def test_mismatched_batch_shapes_and_empty_streams():
    bs = _stream(0, T=2) + [np.ones((16, 5)) * 0.5]
    with pytest.raises(ValueError, match=r"batches\[2\] has E=5"):
        simulate(bs, 2, updates.sign(0.1))
    with pytest.raises(ValueError, match="empty"):
        simulate([], 2, updates.sign(0.1))


def _saved_mid_step(tmp_path):
    """A checkpoint after 7 batches with micro_batches=4: 3 micro-batches pending."""
    rule = updates.sign(0.1)
    head = simulate(_stream(1, T=7), 2, rule, micro_batches=4)
    path = tmp_path / "state.npz"
    save_state(path, rule, head.state, micro_batches=4)
    return rule, path


def test_resuming_mid_step_with_another_micro_batch_setting_is_refused(tmp_path):
    rule, path = _saved_mid_step(tmp_path)
    with pytest.raises(CheckpointError, match="resume it with micro_batches=4"):
        load_state(path, rule, micro_batches=2)
    state = load_state(path, rule, micro_batches=4)
    tail = simulate(_stream(2, T=53), 2, rule, micro_batches=4, state=state)
    assert np.isfinite(tail.step).sum() == (3 + 53) // 4  # updates keep happening


def test_corrupt_or_mismatched_checkpoints_give_one_clear_error(tmp_path):
    rule, path = _saved_mid_step(tmp_path)
    with np.load(path) as f:
        good = {k: f[k] for k in f.files}
    bad_cases = {
        "nan bias": good | {"bias": np.full(4, np.nan)},
        "negative count": good | {"count": np.array(-1)},
        "short pending": good | {"pending": np.zeros(2, dtype=np.int64)},
        "other rule": good | {"rule": np.array("proportional")},
        "missing field": {k: v for k, v in good.items() if k != "n_pending"},
        "future version": good | {"format_version": np.array(99)},
    }
    for what, d in bad_cases.items():
        np.savez(tmp_path / "bad.npz", **d)
        with pytest.raises(CheckpointError):
            load_state(tmp_path / "bad.npz", rule)
        assert what
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a readable .npz"):
        load_state(tmp_path / "junk.npz", rule)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state(tmp_path / "missing.npz", rule)
    with pytest.raises(CheckpointError, match="E=4 experts, expected E=8"):
        load_state(path, rule, n_experts=8)


def _reference_simulate(batches, k, rule, micro_batches=1, eval_batches=(), state=None):
    """The loop written with the public router-state machine, one validated call per step."""
    from lfbtheory.online.state import accumulate, init_state, optimizer_step

    evals = set(eval_batches)
    st_ = state if state is not None else init_state(rule, np.asarray(batches[0]).shape[1])
    biases, loads, reward, step = [], [], [], []
    for t, s in enumerate(batches):
        biases.append(st_.bias)
        r = lfb.route(s, k=k, bias=st_.bias, bias_mode=rule.bias_mode, normalize=False)
        u = np.nan
        if t not in evals:
            st_ = accumulate(st_, r.loads)
            if st_.n_pending >= micro_batches:
                u = float(rule.step(st_.rule.count))
                (st_,) = optimizer_step(rule, [st_])
        loads.append(r.loads)
        reward.append(float(np.take_along_axis(np.asarray(s, float), r.experts, axis=1).sum()))
        step.append(u)
    return biases, loads, reward, step, st_


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 10**6),
    st.sampled_from(RULES),
    st.integers(1, 3),
    st.sets(st.integers(0, 11), max_size=3),
    st.booleans(),
    st.booleans(),
)
def test_simulate_is_bit_identical_to_the_validated_state_machine(
    seed, rule, micro, evals, as_array, frozen
):
    """The loop's fast path (stream validated once, unchecked updates of the states it built)
    gives bit for bit the trajectory of accumulate/optimizer_step called step by step."""
    from lfbtheory.online.state import freeze, init_state

    bs = _stream(seed)
    r = R(rule)
    st0 = init_state(r, 4)
    st0 = freeze(st0) if frozen else st0
    tr = simulate(
        np.array(bs) if as_array else bs, 2, r, micro_batches=micro, eval_batches=evals, state=st0
    )
    biases, loads, reward, step, final = _reference_simulate(bs, 2, r, micro, evals, st0)
    np.testing.assert_array_equal(tr.bias, np.array(biases))
    np.testing.assert_array_equal(tr.loads, np.array(loads))
    np.testing.assert_array_equal(tr.reward, np.array(reward))
    np.testing.assert_array_equal(tr.step, np.array(step))
    np.testing.assert_array_equal(tr.state.bias, final.bias)
    np.testing.assert_array_equal(tr.state.pending, final.pending)
    assert (tr.state.rule.count, tr.state.n_pending, tr.state.frozen) == (
        final.rule.count,
        final.n_pending,
        final.frozen,
    )


def test_a_non_finite_batch_in_a_stacked_stream_is_named():
    bs = np.array(_stream(0))
    bs[5, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"batches\[5\] must be finite"):
        simulate(bs, 2, R("sign"))
