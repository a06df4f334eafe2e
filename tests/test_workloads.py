"""Tests of lfbtheory.workloads: bit-identity with v0.1, determinism, shapes and ranges,
laziness (no I/O or fitting at construction), the OLMoE match, replay completion and layers,
inferred E/k, the adversary's causality, user files, and the promised errors.

Real data ships as package data (lfbtheory/data), so nothing here is skipped for data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lfbtheory import route, topk_indices
from lfbtheory.workloads import (
    FLAME_FILE,
    GATES,
    HISTOGRAM_FILE,
    TAIL_SPREAD,
    WORKLOADS,
    Adversarial,
    Drifting,
    OlmoeMatched,
    Replay,
    Stationary,
    TraceInfo,
    Zipf,
    complete_topk,
    fit_popularity_offsets,
    make_workload,
    materialize,
    replay,
    topk_load_shares,
    trace_info,
)
from lfbtheory.workloads import (
    data_dir as lfb_data_dir,
)

SYNTHETIC = ("stationary", "zipf", "drifting", "clustered", "adversarial")


@pytest.fixture(scope="module")
def data_dir():
    """The real routing data shipped as package data (never skipped: it is always there)."""
    return lfb_data_dir()


def _needs_data(name: str) -> bool:
    return name in ("olmoe", "replay")


def _make(name: str, n: int = 32, n_experts: int = 64, **options):
    return make_workload(name, n=n, n_experts=n_experts, **options)


# ---------------------------------------------------------------------------- determinism, shape


@pytest.mark.parametrize("name", [*SYNTHETIC, "olmoe", "replay"])
def test_seeded_determinism_and_shapes(name, request):
    if _needs_data(name):
        request.getfixturevalue("data_dir")
    w = _make(name)
    a = materialize(w, 4, 7)
    b = materialize(w, 4, 7)
    c = materialize(w, 4, 8)
    assert a.shape == (4, 32, 64) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)  # bit-identical
    assert not np.array_equal(a, c)
    # an equal SeedSequence gives the same stream as the int; global numpy state is ignored
    saved = np.random.get_state()  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002 -- deliberately disturb the legacy global state
    try:
        d = np.stack(list(w.batches(4, np.random.SeedSequence(7))))
    finally:
        np.random.set_state(saved)  # noqa: NPY002
    np.testing.assert_array_equal(a, d)
    assert w.adaptive is (name == "adversarial")
    rebuilt = make_workload(**w.config())
    assert rebuilt == w
    np.testing.assert_array_equal(materialize(rebuilt, 4, 7), a)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(SYNTHETIC),
    gate=st.sampled_from(GATES),
    n=st.integers(1, 40),
    n_experts=st.integers(2, 24),
    seed=st.integers(0, 2**32),
    steps=st.integers(1, 3),
)
def test_ranges_property(name, gate, n, n_experts, seed, steps):
    """Invariant: every batch is a finite float64 (n, E) array in the gate's range:
    sigmoid scores in the open interval (0, 1), softmax rows on the simplex."""
    w = make_workload(name, n=n, n_experts=n_experts, gate=gate)
    count = 0
    for batch in w.batches(steps, seed):
        count += 1
        assert batch.shape == (n, n_experts) and batch.dtype == np.float64
        if gate == "sigmoid":
            assert np.all(batch > 0) and np.all(batch < 1)
        else:
            assert np.all(batch >= 0)
            np.testing.assert_allclose(batch.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert count == steps


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(SYNTHETIC),
    gate=st.sampled_from(GATES),
    n=st.integers(1, 20),
    n_experts=st.integers(2, 12),
    noise=st.sampled_from([0.5, 1.0, 3.0]),
    seed=st.integers(0, 2**32),
)
def test_materialize_is_the_stacked_stream_bit_for_bit(name, gate, n, n_experts, noise, seed):
    """The materialised stream is exactly the batches the lazy stream yields."""
    w = make_workload(name, n=n, n_experts=n_experts, gate=gate, noise_scale=noise)
    np.testing.assert_array_equal(materialize(w, 3, seed), np.stack(list(w.batches(3, seed))))


def test_large_logits_stay_inside_open_interval():
    # popularity 40 would give sigmoid(x) == 1.0 exactly without the documented clip at 30
    batch = next(Stationary(n=8, n_experts=4, popularity_scale=40.0).batches(1, 0))
    assert np.all(batch > 0) and np.all(batch < 1)


@pytest.mark.parametrize("name", [*SYNTHETIC, "olmoe", "replay"])
def test_batches_are_lazy_generators(name, request):
    if _needs_data(name):
        request.getfixturevalue("data_dir")
    w = _make(name)
    it = w.batches(10**9, 0)  # a 10^9-step stream: nothing is generated until asked
    assert isinstance(it, types.GeneratorType)
    assert next(it).shape == (32, 64)
    if name == "adversarial":
        gen = w.adaptive_batches(10**9, 0)
        assert isinstance(gen, types.GeneratorType)
        assert next(gen).shape == (32, 64)


# ---------------------------------------------------------------------------- synthetic details


def test_stationary_offsets_and_offset_seed():
    w = Stationary(n=16, n_experts=8, popularity_scale=2.0, offset_seed=5)
    # offset_seed fixes the popularity profile across batch seeds; noise still differs
    np.testing.assert_array_equal(w.offsets(0), w.offsets(1))
    np.testing.assert_array_equal(
        w.offsets(0), 2.0 * Stationary(n=1, n_experts=8).offsets(np.random.SeedSequence(5))
    )
    assert not np.array_equal(materialize(w, 2, 0), materialize(w, 2, 1))


@pytest.mark.parametrize("name", ["stationary", "zipf", "drifting", "adversarial"])
def test_batches_use_the_reported_offsets(name):
    # with tiny noise every token's logits are the offsets (adversary: plus its boost)
    w = make_workload(name, n=5, n_experts=8, noise_scale=1e-6)
    batch = next(w.batches(1, 9))
    logits = np.log(batch / (1 - batch))
    expect = w.offsets(9).copy()
    if name == "adversarial":
        expect[w.targets(np.zeros(8))] += w.strength
    np.testing.assert_allclose(logits, np.broadcast_to(expect, (5, 8)), atol=1e-4)


def test_zipf_offsets_are_log_ranks():
    w = Zipf(n=4, n_experts=10, exponent=1.5)
    np.testing.assert_allclose(np.sort(w.offsets(3)), np.sort(-1.5 * np.log(np.arange(1, 11))))
    assert not np.array_equal(w.offsets(3), w.offsets(4))  # the permutation depends on the seed


def test_drifting_zero_drift_is_stationary_and_walk_has_rate():
    st_ = materialize(Stationary(n=8, n_experts=6), 5, 11)
    dr0 = materialize(Drifting(n=8, n_experts=6, drift=0.0), 5, 11)
    np.testing.assert_array_equal(st_, dr0)
    dr = Drifting(n=8, n_experts=64, drift=0.05)
    path = np.stack(list(dr.offset_path(401, 2)))
    np.testing.assert_array_equal(path[0], Stationary(n=8, n_experts=64).offsets(2))
    steps = np.diff(path, axis=0)  # 400 x 64 independent N(0, 0.05^2) increments
    assert abs(steps.std() / 0.05 - 1) < 0.05  # 25600 samples: sd of the ratio ~ 0.0044
    assert not np.array_equal(
        materialize(dr, 3, 2)[2], materialize(Stationary(n=8, n_experts=64), 3, 2)[2]
    )


def test_drifting_rotation_and_mean_reverting():
    rot = Drifting(n=4, n_experts=32, mode="rotation", drift=0.1, popularity_scale=2.0)
    path = np.stack(list(rot.offset_path(200, 0)))
    norms = np.linalg.norm(path, axis=1)
    np.testing.assert_allclose(norms, norms[0], rtol=1e-12)  # a rotation keeps the norm
    rms_step = np.sqrt(np.mean(np.diff(path, axis=0) ** 2, axis=1))
    np.testing.assert_allclose(rms_step, 0.1, rtol=1e-3)  # chord ~ arc for small angles
    mr = Drifting(n=4, n_experts=200, mode="mean_reverting", drift=0.5)
    late = np.stack(list(mr.offset_path(300, 1)))[-50:]
    assert 0.85 < late.std() < 1.15  # stationary std popularity_scale = 1


def test_clustered_topics():
    w = make_workload("clustered", n=50, n_experts=8, noise_scale=1e-3, per="batch", n_topics=3)
    cents = w.centroids(4)
    topics = [int(t[0]) for t in w.topics(6, 4)]
    for batch, j in zip(w.batches(6, 4), topics, strict=True):
        logits = np.log(batch / (1 - batch))
        np.testing.assert_allclose(logits, np.broadcast_to(cents[j], logits.shape), atol=0.01)
    wt = make_workload(
        "clustered", n=400, n_experts=8, per="token", n_topics=2, topic_weights=[3, 1]
    )
    tok = next(wt.topics(1, 0))
    assert tok.shape == (400,) and 0.65 < np.mean(tok == 0) < 0.85  # weight 0.75, sd 0.02


# ---------------------------------------------------------------------------- OLMoE match


def test_olmoe_topk_shares_match_histogram(data_dir):
    w = _make("olmoe", n=4096)  # olmoe / layer 0 / c4, E=64, top-8
    fit = w.fit()
    assert fit.converged and fit.max_rel_error < 1e-8
    hist = w.histogram()
    target = hist / hist.sum()
    # the fit matches the +0.5-smoothed counts; smoothing moves a share by < 1e-6 (total 1.67M)
    np.testing.assert_allclose(fit.achieved, target, rtol=0, atol=1e-6)
    loads = np.zeros(64)
    for batch in w.batches(50, 0):  # 204,800 tokens of plain top-8 routing
        loads += np.bincount(route(batch, 8, weights=False).experts.ravel(), minlength=64)
    shares = loads / loads.sum()
    # binomial sd of a share: sqrt(p (1 - p) / N) / k with p = k share; allow 4.5 sd (64 experts)
    sd = np.sqrt(8 * target * (1 - 8 * target) / 204_800) / 8
    assert np.all(np.abs(shares - target) < 4.5 * sd + 1e-9), np.max(np.abs(shares - target) / sd)
    assert np.max(np.abs(shares - target)) < 5e-4  # the stated absolute tolerance


def test_olmoe_mistral_and_skewed_options(data_dir):
    w = make_workload("olmoe", n=2000, n_experts=8, model="mistral", domain="arxiv", layer=15)
    assert w.fit_k == 2 and w.fit().max_rel_error < 1e-8
    sk = make_workload("olmoe", n=8, n_experts=64, domain="arxiv")
    assert sk.fit().achieved.max() * 64 > 7.5  # the strongly skewed case (max/mean 7.8)
    top1 = make_workload(
        "olmoe", n=8, n_experts=64, kind="expert_counts_top1", domain="github", layer=7
    )  # has zero counts: smoothed, still fitted
    assert top1.fit_k == 1 and top1.fit().converged and (top1.histogram() == 0).any()


def test_topk_load_shares_agree_with_monte_carlo():
    rng = np.random.default_rng(0)
    z = rng.normal(size=12) * 1.5
    exact = topk_load_shares(z, 3, noise_scale=0.7)
    np.testing.assert_allclose(exact.sum(), 1.0, atol=1e-12)
    x = z + 0.7 * rng.standard_normal((100_000, 12))
    mc = np.bincount(topk_indices(x, 3).ravel(), minlength=12) / 300_000
    sd = np.sqrt(3 * exact * (1 - 3 * exact) / 100_000) / 3
    assert np.all(np.abs(mc - exact) < 4.5 * sd)


def test_fit_rejects_infeasible_shares():
    with pytest.raises(ValueError, match="1/k"):
        fit_popularity_offsets([0.6, 0.2, 0.1, 0.1], k=2)
    with pytest.raises(ValueError, match="positive"):
        fit_popularity_offsets([0.5, 0.0, 0.5], k=1)


# ---------------------------------------------------------------------------- replay


def _flame(data_dir):
    with np.load(data_dir / FLAME_FILE) as d:
        return (
            d["topk_scores"].astype(np.float64),
            d["topk_ids"].astype(np.int64),
            tuple(int(v) for v in d["layers"]),
        )


def test_replay_infers_e_k_and_replays_one_layer(data_dir):
    scores, ids, names = _flame(data_dir)
    info = trace_info()
    assert info == TraceInfo(n_experts=64, k=6, layers=names, gate="softmax", n_tokens=2048)
    assert names == tuple(range(2, 10))
    w = make_workload("replay", n=256)  # no n_experts, no k: both come from the trace
    assert (w.n_experts, w.k, w.layer_names) == (64, 6, (2,))
    assert w.config()["n_experts"] is None  # the config stays as given (inferred on use)
    epoch = materialize(w, 8, 0).reshape(2048, 64)  # 8 x 256 = layer 2 once, nothing else
    np.testing.assert_array_equal(topk_indices(epoch, 6), ids[0])
    np.testing.assert_array_equal(materialize(w, 9, 0)[8], epoch[:256])  # then it cycles
    for j, name in enumerate(names):  # one run per layer, as an experiment runner would
        one = replay(n=2048, layer=name)
        assert one.layer_names == (name,)
        np.testing.assert_array_equal(topk_indices(next(one.batches(1, 0)), 6), ids[j])


@pytest.mark.parametrize("tail", ["lognormal", "dirichlet"])
def test_replay_preserves_topk_and_completes_rows(data_dir, tail):
    """Completion invariants on the real trace: recorded top-k ids, order and scores kept
    exactly, rows sum to 1, every completed score positive and below the token's k-th."""
    scores, ids, _ = _flame(data_dir)
    w = replay(data_dir / FLAME_FILE, n=512, tail=tail, layers="all")
    assert w.n_experts == 64
    epoch = materialize(w, 32, 3)  # 8 layers x 2048 tokens = 32 batches of 512: one epoch
    rows = epoch.reshape(8, 2048, 64)
    top = np.stack([topk_indices(r, 6) for r in rows])
    np.testing.assert_array_equal(top, ids)  # same ids, same order
    np.testing.assert_array_equal(np.take_along_axis(rows, ids, axis=2), scores)  # exact
    np.testing.assert_allclose(rows.sum(axis=2), 1.0, rtol=0, atol=1e-12)
    rest = rows.copy()
    np.put_along_axis(rest, ids, -1.0, axis=2)
    unrec = rest[rest >= 0].reshape(8, 2048, 58)
    assert np.all(unrec > 0) and np.all(unrec.max(axis=2) < scores[:, :, 5])
    # cycling: the next epoch repeats the same completed tokens; the seed changes only the tail
    it = w.batches(33, 3)
    first = next(it)
    first[:] = -1.0  # yielded batches are copies: scribbling on one leaves the cache intact
    for _ in range(31):
        next(it)
    np.testing.assert_array_equal(next(it), epoch[0])
    np.testing.assert_array_equal(np.stack(list(w.batches(32, 3))), epoch)  # = materialize
    other = materialize(w, 1, 4)[0]
    np.testing.assert_array_equal(topk_indices(other, 6), ids[0, :512])
    assert not np.array_equal(other, epoch[0])


@settings(max_examples=40, deadline=None)
@given(
    n_experts=st.integers(3, 24),
    data=st.data(),
    seed=st.integers(0, 2**32),
    tail=st.sampled_from(["lognormal", "dirichlet", "uniform"]),
)
def test_completion_invariants_property(n_experts, data, seed, tail):
    """For any feasible top-k rows (the top-k of a softmax of gaussian logits, so
    R/(E-k) < s_k), the completion keeps the top-k exactly and puts the leftover mass
    strictly below each token's k-th score."""
    k = data.draw(st.integers(1, n_experts - 1))
    n_tok = data.draw(st.integers(1, 6))
    gen = np.random.default_rng(seed)
    probs = np.exp(2.0 * gen.standard_normal((n_tok, n_experts)))
    probs /= probs.sum(axis=1, keepdims=True)
    ids = topk_indices(probs, k)
    top = np.take_along_axis(probs, ids, axis=1)
    full = complete_topk(top, ids, n_experts, np.random.default_rng(seed + 1), tail)
    np.testing.assert_array_equal(topk_indices(full, k), ids)
    np.testing.assert_array_equal(np.take_along_axis(full, ids, axis=1), top)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    rest = full.copy()
    np.put_along_axis(rest, ids, np.nan, axis=1)
    assert np.all(np.nan_to_num(rest, nan=0.0) < top[:, -1:])
    assert np.all(np.nan_to_num(rest, nan=1.0) >= 0)


def test_replay_layers_straddling_and_uniform_tail(data_dir):
    _, ids, names = _flame(data_dir)
    full = materialize(replay(data_dir / FLAME_FILE, n=1000, layers="all"), 17, 0)
    full = full.reshape(-1, 64)
    # n=1000 does not divide 2048: batches straddle layers, tokens stay in sequence order
    one = materialize(replay(data_dir / FLAME_FILE, n=2048, layer=names[3]), 1, 0)[0]
    np.testing.assert_array_equal(one, full[3 * 2048 : 4 * 2048])  # completion keyed by layer
    np.testing.assert_array_equal(
        one, materialize(replay(n=2048, layers=[names[5], names[3]]), 2, 0)[1]
    )
    uni = materialize(replay(data_dir / FLAME_FILE, n=256, tail="uniform"), 1, 0)[0]
    rest = uni.copy()
    np.put_along_axis(rest, ids[0, :256], np.nan, axis=1)
    rest = rest[~np.isnan(rest)].reshape(256, 58)
    np.testing.assert_allclose(rest, rest[:, :1].repeat(58, axis=1), rtol=1e-15)


def test_tail_spread_is_calibrated_on_flame(data_dir):
    """TAIL_SPREAD = 1.3 is derived as the docstring says: the trace's mean log(s_1/s_6)
    over the expected gap x_(1) - x_(6) of 64 standard gaussians; the mean top-6 mass lies
    between that of gaussian logits with std 1.0 and 1.5."""
    scores, _, _ = _flame(data_dir)
    log_ratio = np.mean(np.log(scores[..., 0] / scores[..., 5]))
    x = np.sort(np.random.default_rng(0).standard_normal((20_000, 64)), axis=1)
    gap = np.mean(x[:, -1] - x[:, -6])  # Monte Carlo sd 0.003
    assert abs(log_ratio / gap - TAIL_SPREAD) < 0.05
    mass = scores.sum(axis=2).mean()

    def top6_mass(sd):
        p = np.exp(sd * np.random.default_rng(1).standard_normal((20_000, 64)))
        return np.mean(np.sort(p / p.sum(axis=1, keepdims=True), axis=1)[:, -6:].sum(axis=1))

    assert top6_mass(1.0) < mass < top6_mass(1.5)


def test_lognormal_tail_is_gaussian_in_log_space():
    # far below the cap (R/(E-k) << s_k) the documented law is log w_j = const + g_j,
    # g_j ~ N(0, spread^2); near the cap it is squashed strictly below s_k
    top = np.array([[0.9]])
    full = complete_topk(
        top, np.array([[0]]), 4001, np.random.default_rng(0), "lognormal", spread=1.3
    )
    tail = full[0, 1:]
    assert abs(np.log(tail).std() / 1.3 - 1) < 0.05  # 4000 draws: sd of the ratio ~ 0.011
    np.testing.assert_allclose(full.sum(), 1.0, atol=1e-14)
    tight = complete_topk(
        np.array([[0.3, 0.2]]), np.array([[3, 1]]), 6, np.random.default_rng(1), "lognormal"
    )  # R/(E-k) = 0.125 vs 0.2
    assert np.all(tight[0, [0, 2, 4, 5]] < 0.2) and abs(tight.sum() - 1) < 1e-14


def test_generic_topk_trace_and_infeasible_completion(tmp_path):
    ids = np.array([[[2, 0], [1, 3]]], dtype=np.int16)
    ok = np.array([[[0.5, 0.3], [0.4, 0.35]]], dtype=np.float32)
    np.savez(tmp_path / "t.npz", topk_scores=ok, topk_ids=ids, num_experts=np.int64(4))
    w = replay(tmp_path / "t.npz", n=2)
    assert (w.n_experts, w.k, w.layer_names) == (4, 2, (0,))  # layers default to 0..L-1
    rows = materialize(w, 1, 0)[0]
    np.testing.assert_array_equal(topk_indices(rows, 2), ids[0])
    # without num_experts the caller must say E
    np.savez(tmp_path / "u.npz", topk_scores=ok, topk_ids=ids)
    with pytest.raises(ValueError, match="n_experts is required"):
        materialize(replay(tmp_path / "u.npz", n=2), 1, 0)
    assert replay(tmp_path / "u.npz", n=2, n_experts=5).k == 2
    bad = np.array([[[0.5, 0.1], [0.4, 0.35]]], dtype=np.float32)  # 0.4 left > 2 x 0.1
    np.savez(tmp_path / "b.npz", topk_scores=bad, topk_ids=ids, num_experts=np.int64(4))
    wb = replay(tmp_path / "b.npz", n=2)  # constructing reads nothing: no error yet
    with pytest.raises(ValueError, match="cannot be completed: layer position 0, token 0"):
        wb.batches(1, 0)


def test_replay_e_mismatch_and_bad_layers(data_dir):
    with pytest.raises(ValueError, match="n_experts=16.*E=64"):
        make_workload("replay", n=32, n_experts=16).batches(1, 0)
    with pytest.raises(ValueError, match="layers entries must be one of 2, 3"):
        make_workload("replay", n=32, layers=[1]).batches(1, 0)
    with pytest.raises(ValueError, match="layer must be one of 2, 3"):
        materialize(make_workload("replay", n=32, layer=10), 1, 0)
    with pytest.raises(ValueError, match="not both"):
        make_workload("replay", n=32, layer=2, layers=[3])
    with pytest.raises(TypeError, match="layer must be an integer"):
        make_workload("replay", n=32, layer="2")
    with pytest.raises(ValueError, match="n .tokens per batch. is required"):
        make_workload("replay").batches(1, 0)
    with pytest.raises(ValueError, match="tail must be one of 'lognormal'"):
        make_workload("replay", n=32, tail="gaussian")
    with pytest.raises(ValueError, match="tail_spread"):
        make_workload("replay", n=32, tail_spread=-1.0)
    with pytest.raises(ValueError, match="transform must be 'none' for a top-k trace"):
        make_workload("replay", n=32, transform="softmax").batches(1, 0)


def test_user_npy_and_npz_replay(tmp_path):
    rng = np.random.default_rng(0)
    mat = rng.random((10, 5))
    np.save(tmp_path / "m.npy", mat)
    w = make_workload("replay", n=4, path=tmp_path / "m.npy")
    assert (w.n_experts, w.k) == (5, None)
    assert trace_info(tmp_path / "m.npy") == TraceInfo(5, None, (), None, 10)
    got = materialize(w, 3, 0).reshape(-1, 5)  # rows 0..9 then 0, 1 (cyclic)
    np.testing.assert_array_equal(got, mat[np.arange(12) % 10])
    np.testing.assert_array_equal(np.stack(list(w.batches(3, 0))).reshape(-1, 5), got)
    cube = rng.normal(size=(3, 6, 5))
    np.savez(tmp_path / "c.npz", logits=cube, other=np.zeros(2))
    w3 = replay(tmp_path / "c.npz", key="logits", transform="softmax")
    assert w3.n == 6  # inferred from the 3-D array
    out = materialize(w3, 4, 0)
    np.testing.assert_allclose(out[3], np.exp(cube[0]) / np.exp(cube[0]).sum(1, keepdims=True))
    np.testing.assert_array_equal(np.stack(list(w3.batches(4, 0))), out)
    with pytest.raises(ValueError, match="key"):
        replay(tmp_path / "c.npz", n=6).batches(1, 0)
    with pytest.raises(ValueError, match="n=5 does not match"):
        replay(tmp_path / "c.npz", n=5, key="logits").batches(1, 0)
    with pytest.raises(ValueError, match="n_experts=4 does not match E=5"):
        make_workload("replay", n=6, n_experts=4, path=tmp_path / "c.npz", key="logits").batches(
            1, 0
        )
    with pytest.raises(ValueError, match="layer/layers apply only to top-k trace"):
        replay(tmp_path / "m.npy", n=4, layer=0).batches(1, 0)
    bad = mat.copy()
    bad[7, 2] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match="non-finite"):
        materialize(replay(tmp_path / "bad.npy", n=4), 2, 0)
    with pytest.raises(ValueError, match="non-finite"):
        list(replay(tmp_path / "bad.npy", n=4).batches(2, 0))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        replay(tmp_path / "missing.npy", n=4).batches(1, 0)
    with pytest.raises(ValueError, match="does not exist"):  # also a ValueError, for CLIs
        trace_info(tmp_path / "missing.npy")


# ---------------------------------------------------------------------------- laziness


def test_constructing_a_replay_reads_nothing(tmp_path):
    """A replay config may point at a file that does not exist yet: the file is read on
    first use, and a rewritten file is read again (the cache keys on mtime and size)."""
    path = tmp_path / "later.npz"
    w = replay(path, n=2)
    w2 = make_workload("replay", n=2, path=path)
    assert w == w2 and hash(w) == hash(w2) and "later.npz" in repr(w)
    ids = np.array([[[2, 0], [1, 3]]], dtype=np.int16)
    np.savez(
        path,
        topk_scores=np.array([[[0.5, 0.3], [0.4, 0.35]]], dtype=np.float32),
        topk_ids=ids,
        num_experts=np.int64(4),
    )
    assert w.n_experts == 4
    np.testing.assert_array_equal(topk_indices(materialize(w, 1, 0)[0], 2), ids[0])
    np.savez(
        path,
        topk_scores=np.array([[[0.6, 0.3], [0.4, 0.35]]], dtype=np.float32),
        topk_ids=ids,
        num_experts=np.int64(5),
    )
    assert w.n_experts == 5 and materialize(w, 1, 0)[0, 0, 2] == np.float32(0.6)


def test_constructing_workloads_does_no_io_and_no_fitting(monkeypatch):
    """Every registered workload can be built with file reading and the popularity fit
    disabled: both happen on first use only. (dataclasses.replace of a Replay with inferred
    n / n_experts reads the file to fill them; config() round-trips without I/O.)"""
    import lfbtheory.workloads.calibrated as calibrated

    def boom(*args, **kwargs):
        raise AssertionError("I/O or fitting at construction")

    monkeypatch.setattr(np, "load", boom)
    monkeypatch.setattr(calibrated, "_selection_probs", boom)
    built = [make_workload(name, n=8, n_experts=64) for name in (*SYNTHETIC, "olmoe", "replay")]
    built.append(OlmoeMatched(n=8, n_experts=64, path="/nonexistent/hist.npz", domain="x"))
    built.append(Replay(path="/nonexistent/trace.npz", n=8, layer=3))
    for w in built:
        assert make_workload(**w.config()) == w
        if not isinstance(w, Replay):
            assert dataclasses.replace(w) == w
    with pytest.raises(AssertionError, match="construction"):
        built[5].fit()  # the olmoe fit: only now does it read (and would fit)
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="hist.npz"):
        built[-2].fit()


# ---------------------------------------------------------------------------- v0.1 numbers


FIXTURES = Path(__file__).parent / "data" / "workloads_v01.npz"


def _cases():
    with np.load(FIXTURES) as d:
        return json.loads(str(d["cases"]))


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c["key"])
def test_streams_are_bit_identical_to_v01(case):
    """Every workload gives the very arrays the v0.1 single-module code gave (saved by
    tests/data/make_workloads_v01.py), through batches() and through materialize()."""
    with np.load(FIXTURES) as d:
        want = d[case["key"]]
    w = make_workload(case["name"], n=case["n"], n_experts=case["n_experts"], **case["options"])
    np.testing.assert_array_equal(np.stack(list(w.batches(case["steps"], case["seed"]))), want)
    np.testing.assert_array_equal(materialize(w, case["steps"], case["seed"]), want)


def test_replay_v01_all_layers_and_new_default():
    """v0.1 cycled all 8 FLAME layers by default; that stream is now layers="all" (bit for
    bit). The new default, one layer, equals v0.1's layers=[2] (the first layer)."""
    with np.load(FIXTURES) as d:
        rows, digest, layer2 = (
            d["replay_all_layers_rows2040"],
            str(d["replay_all_layers_sha256"]),
            d["replay_layer2"],
        )
    big = materialize(make_workload("replay", n=1000, layers="all"), 3, 3)
    assert hashlib.sha256(big.tobytes()).hexdigest() == digest
    np.testing.assert_array_equal(big.reshape(-1, 64)[2040:2060], rows)
    np.testing.assert_array_equal(materialize(make_workload("replay", n=16), 3, 3), layer2)


def test_adversary_regeneration_is_bit_identical_to_v01():
    with np.load(FIXTURES) as d:
        biases, want = d["adversarial_biases_in"], d["adversarial_biases_out"]
    got = np.stack(list(Adversarial(n=6, n_experts=8).batches(3, 4, biases=biases)))
    np.testing.assert_array_equal(got, want)


def test_package_data_ships_with_provenance():
    root = lfb_data_dir()
    for name in (FLAME_FILE, HISTOGRAM_FILE):
        assert (root / name).is_file(), name
    readme = (root / "README.md").read_text()
    assert "Apache-2.0" in readme and FLAME_FILE in readme and HISTOGRAM_FILE in readme


def _drive(w, biases, steps, seed=0):
    gen = w.adaptive_batches(steps, seed)
    out = [next(gen)]
    for t in range(1, steps):
        out.append(gen.send(biases[t - 1]))
    with pytest.raises(StopIteration):
        gen.send(biases[steps - 1])
    return np.stack(out)


def test_adversary_sees_only_past_biases():
    w = Adversarial(n=16, n_experts=8, n_targets=2)
    rng = np.random.default_rng(1)
    biases = rng.normal(size=(10, 8))
    base = _drive(w, biases, 10)
    for s in (0, 4, 8):  # change the bias that routed batch s: batches <= s must not move
        changed = biases.copy()
        changed[s] = -changed[s]
        alt = _drive(w, changed, 10)
        np.testing.assert_array_equal(alt[: s + 1], base[: s + 1])
        assert not np.array_equal(alt[s + 1], base[s + 1])  # and the adversary does react
    # non-adaptive regeneration from the recorded trajectory reproduces the adaptive run
    np.testing.assert_array_equal(np.stack(list(w.batches(10, 0, biases=biases))), base)


def test_adversary_boosts_lowest_bias_experts():
    w = Adversarial(n=32, n_experts=8, n_targets=2, strength=3.0)
    bias = np.array([0.0, 0.5, -1.0, 0.2, -0.3, 0.9, 0.1, 0.0])
    np.testing.assert_array_equal(np.sort(w.targets(bias)), [2, 4])
    gen = w.adaptive_batches(2, 5)
    b0 = next(gen)
    b1 = gen.send(bias)
    zero = np.stack(list(w.batches(2, 5)))  # same noise, bias 0: targets experts 0 and 1
    np.testing.assert_array_equal(b0, zero[0])
    same = [3, 5, 6, 7]  # neither boosted against bias 0 nor against `bias`
    np.testing.assert_array_equal(b1[:, same], zero[1][:, same])
    assert np.all(b1[:, [2, 4]] > zero[1][:, [2, 4]]) and np.all(b1[:, [0, 1]] < zero[1][:, [0, 1]])
    with pytest.raises(ValueError, match="shape"):
        gen2 = w.adaptive_batches(3, 0)
        next(gen2)
        gen2.send(np.zeros(5))
    assert not Stationary(n=2, n_experts=2).adaptive


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_workload("gauss", n=4, n_experts=4), "workload must be one of.*stationary"),
        (lambda: make_workload("stationary", n=0, n_experts=4), "n must be an integer >= 1"),
        (
            lambda: make_workload("stationary", n=4, n_experts=1),
            "n_experts must be an integer >= 2",
        ),
        (
            lambda: make_workload("stationary", n=4, n_experts=4, gate="relu"),
            "gate must be one of 'sigmoid', 'softmax'",
        ),
        (lambda: make_workload("stationary", n=4, n_experts=4, noise_scale=-1.0), "noise_scale"),
        (
            lambda: make_workload("stationary", n=4, n_experts=4, popularity_scale=-0.1),
            "popularity_scale must be finite and >= 0",
        ),
        (
            lambda: make_workload("stationary", n=4, n_experts=4, colour=1),
            "unknown option.*'colour'.*allowed: gate",
        ),
        (lambda: make_workload("drifting", n=4, n_experts=4, mode="jump"), "mode must be one of"),
        (
            lambda: make_workload("drifting", n=4, n_experts=4, mode="mean_reverting", drift=2.0),
            "drift must be < popularity_scale",
        ),
        (
            lambda: make_workload("clustered", n=4, n_experts=4, topic_weights=[1, 2]),
            "topic_weights must be 4",
        ),
        (lambda: make_workload("clustered", n=4, n_experts=4, per="sequence"), "per must be"),
        (lambda: make_workload("adversarial", n=4, n_experts=4, strength=50.0), "strength"),
        (lambda: make_workload("adversarial", n=4, n_experts=4, n_targets=4), "n_targets"),
        (lambda: make_workload("zipf", n=4, n_experts=4, exponent=float("nan")), "exponent"),
        (lambda: Stationary(n=4, n_experts=4).batches(-1, 0), "steps must be an integer >= 0"),
        (lambda: Stationary(n=4, n_experts=4).batches(3, -2), "seed must be a non-negative"),
        (lambda: materialize(Stationary(n=4096, n_experts=256), 10**5, 0), "GiB"),
        (lambda: Adversarial(n=4, n_experts=4).batches(3, 0, biases=np.zeros((1, 4))), "biases"),
        (lambda: fit_popularity_offsets([0.5, 0.5], k=1, tol=0.0), "tol must be finite and > 0"),
    ],
)
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_workload("stationary", n=2.5, n_experts=4), "n must be an integer"),
        (lambda: make_workload("stationary", n_experts=4), "n must be an integer >= 1, got None"),
        (lambda: make_workload("zipf", n=4, n_experts=True), "n_experts must be an integer"),
        (
            lambda: make_workload("stationary", n=4, n_experts=4, noise_scale="1"),
            "noise_scale must be a real number",
        ),
        (
            lambda: make_workload("clustered", n=4, n_experts=4, topic_weights=["a"] * 4),
            "topic_weights must be a sequence",
        ),
        (lambda: Stationary(n=4, n_experts=4).batches(3, 1.5), "seed"),
        (lambda: Stationary(n=4, n_experts=4).batches(2.0, 1), "steps must be an integer"),
        (lambda: make_workload("replay", n=4, path=3), "path must be a file path"),
        (lambda: make_workload("replay", n=4, layers="first"), "layers must be 'all'"),
        (lambda: make_workload("olmoe", n=4, n_experts=64, domain=1), "domain must be a string"),
        (lambda: topk_load_shares([0.0, 1.0], k=1.0), "k must be an integer"),
    ],
)
def test_wrong_types_raise_type_error(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_olmoe_options(data_dir):
    with pytest.raises(ValueError, match="model must be one of"):
        make_workload("olmoe", n=4, n_experts=64, model="gpt")
    with pytest.raises(ValueError, match="layer must be one of 0, 7, 15"):
        make_workload("olmoe", n=4, n_experts=64, layer=3)
    # errors that need the histogram file surface on first use (construction reads nothing)
    with pytest.raises(ValueError, match="n_experts=16 does not match E=64"):
        make_workload("olmoe", n=4, n_experts=16).batches(1, 0)
    with pytest.raises(ValueError, match="domain must be one of.*arxiv"):
        make_workload("olmoe", n=4, n_experts=64, domain="news").fit()
    with pytest.raises(ValueError, match="fit_k=16 cannot match.*< 1/k"):
        make_workload("olmoe", n=4, n_experts=64, domain="arxiv", fit_k=16).offsets(0)
    with pytest.raises(ValueError, match="kind="):
        make_workload(
            "olmoe", n=4, n_experts=64, model="olmoe-sft", domain="tulu", kind="expert_counts_top1"
        ).histogram()


def test_registry_names():
    assert {"stationary", "zipf", "olmoe", "drifting", "clustered", "adversarial", "replay"} <= set(
        WORKLOADS
    )
