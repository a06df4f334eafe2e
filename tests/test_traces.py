"""The trace file format: a round trip keeps every field, files are numpy-only, the routing a
trace states (top-k of scores + bias, group-limited) is the package's routing, bad files fail
with a message naming what is wrong."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lfbtheory import route, sigmoid, softmax
from lfbtheory.traces import (
    FORMAT,
    FORMAT_VERSION,
    Trace,
    inspect_trace,
    read_trace,
    validate_trace,
    write_trace,
)
from lfbtheory.workloads import FLAME_FILE, data_dir


@st.composite
def traces(draw):
    n_layers = draw(st.integers(1, 3))
    n = draw(st.integers(1, 40))
    e = draw(st.sampled_from([4, 6, 8]))
    k = draw(st.integers(1, e - 1))
    kind = draw(st.sampled_from(["scores", "logits"]))
    gate = draw(st.sampled_from(["softmax", "sigmoid"] + (["none"] if kind == "scores" else [])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    with_bias = draw(st.booleans())
    grouped = draw(st.booleans()) and e % 2 == 0 and k <= e // 2
    return Trace(
        values=rng.normal(size=(n_layers, n, e)).astype(dtype),
        kind=kind,
        gate=gate,
        k=k,
        layer_names=tuple(f"layers.{i}.mlp.gate" for i in range(n_layers)),
        model="TinyMoE test",
        dtype="bfloat16",
        n_groups=2 if grouped else 0,
        topk_groups=1 if grouped else 0,
        batch_index=rng.integers(0, 5, n),
        sequence_index=rng.integers(0, 3, n),
        position=rng.integers(0, 64, n),
        seed=7,
        max_tokens=n,
        bias=rng.normal(size=(n_layers, e)) * 0.01 if with_bias else None,
        experts=np.argsort(-rng.normal(size=(n_layers, n, e)), axis=2)[:, :, :k],
    )


@settings(max_examples=20, deadline=None)
@given(traces())
def test_a_written_trace_reads_back_identically(tmp_path_factory, trace):
    path = tmp_path_factory.mktemp("t") / "trace.npz"
    back = read_trace(write_trace(trace, path))
    for f in (
        "kind",
        "gate",
        "k",
        "layer_names",
        "model",
        "dtype",
        "n_groups",
        "topk_groups",
        "group_score_topk",
        "seed",
        "max_tokens",
    ):
        assert getattr(back, f) == getattr(trace, f), f
    for f in ("batch_index", "sequence_index", "position"):
        np.testing.assert_array_equal(getattr(back, f), getattr(trace, f))
    np.testing.assert_array_equal(back.values, trace.values)
    assert back.values.dtype == trace.values.dtype
    for f in ("bias", "experts"):
        a, b = getattr(back, f), getattr(trace, f)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)


@settings(max_examples=20, deadline=None)
@given(traces())
def test_trace_scores_are_the_gate_of_the_logits_and_its_routing_is_route(trace):
    for j in range(trace.n_layers):
        x = np.asarray(trace.values[j], np.float64)
        want = (
            x
            if trace.kind == "scores" or trace.gate == "none"
            else (sigmoid(x) if trace.gate == "sigmoid" else softmax(x, axis=1))
        )
        np.testing.assert_allclose(trace.scores(j), want, rtol=0, atol=0)
        np.testing.assert_array_equal(
            trace.routed_experts(j),
            route(want, trace.k, trace.layer_bias(j), **trace.group_kwargs, weights=False).experts,
        )


def test_file_is_plain_numpy_and_self_describing(tmp_path):
    rng = np.random.default_rng(0)
    t = Trace(
        values=rng.normal(size=(2, 10, 4)).astype(np.float32),
        kind="logits",
        gate="softmax",
        k=2,
        layer_names=("a", "b"),
    )
    path = write_trace(t, tmp_path / "t.npz")
    with np.load(path, allow_pickle=False) as d:
        assert str(d["format"]) == FORMAT
        assert int(d["format_version"]) == FORMAT_VERSION
        assert "values" in str(d["description"]) and "gate" in str(d["description"])
        assert d["values"].shape == (2, 10, 4)
        np.testing.assert_array_equal(d["position"], np.full(10, -1))


def test_inspect_reads_both_layouts(tmp_path):
    flame = inspect_trace(data_dir() / FLAME_FILE)
    assert (flame.layout, flame.n_experts, flame.k, flame.gate) == ("topk", 64, 6, "softmax")
    assert len(flame.layer_names) == 8
    t = Trace(
        values=np.zeros((1, 5, 8), np.float32) + np.arange(8),
        kind="scores",
        gate="none",
        k=3,
        layer_names=("g",),
    )
    info = inspect_trace(write_trace(t, tmp_path / "t.npz"))
    assert (info.layout, info.n_experts, info.k, info.n_tokens) == (FORMAT, 8, 3, 5)


def _base(**kw):
    args = dict(values=np.zeros((1, 3, 4)), kind="scores", gate="softmax", k=2, layer_names=("g",))
    args.update(kw)
    return args


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(kind="probs"), "kind must be one of"),
        (dict(gate="relu"), "gate must be one of"),
        (dict(kind="logits", gate="none"), "gate must be one of"),
        (dict(k=4), r"k must be an integer in \[1, E=4\)"),
        (dict(layer_names=("a", "b")), "layer_names must name all L=1"),
        (dict(values=np.zeros((1, 3))), r"values must have shape \(L, N, E\)"),
        (dict(values=np.full((1, 3, 4), np.nan)), "values must be finite"),
        (dict(bias=np.zeros((1, 5))), r"bias must be finite with shape \(L, E\)"),
        (dict(experts=np.full((1, 3, 2), 9)), r"experts must be integers in \[0, 4\)"),
        (dict(n_groups=3, topk_groups=1), "n_groups must divide E=4"),
    ],
)
def test_invalid_traces_name_the_field(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Trace(**_base(**kw))


def test_reading_rejects_other_files_and_newer_versions(tmp_path):
    with pytest.raises(ValueError, match="missing.npz: does not exist"):
        read_trace(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not an lfbtheory.trace file"):
        read_trace(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="top-k-only trace"):
        read_trace(data_dir() / FLAME_FILE)
    t = Trace(**_base())
    path = write_trace(t, tmp_path / "t.npz")
    with np.load(path) as d:
        entries = dict(d)
    entries["format_version"] = np.array(FORMAT_VERSION + 1)
    np.savez(tmp_path / "new.npz", **entries)
    with pytest.raises(ValueError, match="upgrade lfbtheory"):
        read_trace(tmp_path / "new.npz")
    with pytest.raises(ValueError, match="must end in .npz"):
        write_trace(t, tmp_path / "t.npy")


def test_arrays_are_read_only():
    t = Trace(**_base())
    with pytest.raises(ValueError):
        t.values[0, 0, 0] = 1.0
    validate_trace(t)


def test_trace_workload_batches_are_consecutive_recorded_tokens_cycled(tmp_path):
    from lfbtheory.workloads import make_workload

    rng = np.random.default_rng(1)
    t = Trace(
        values=rng.normal(size=(2, 10, 4)),
        kind="logits",
        gate="sigmoid",
        k=2,
        layer_names=("a", "b"),
    )
    path = write_trace(t, tmp_path / "t.npz")
    wl = make_workload("trace", n=4, n_experts=4, path=str(path), layer=1)
    assert (wl.n_experts, wl.k) == (4, 2)
    got = list(wl.batches(5, 0))
    rows = np.arange(20).reshape(5, 4) % 10
    for b, r in zip(got, rows, strict=True):
        np.testing.assert_array_equal(b, t.scores(1)[r])
    with pytest.raises(ValueError, match="n_experts must equal the trace's E=4"):
        make_workload("trace", n=4, n_experts=8, path=str(path))
    with pytest.raises(ValueError, match=r"layer must be an integer in \[0, 2\)"):
        make_workload("trace", n=4, n_experts=4, path=str(path), layer=2)


def test_trace_workload_replays_top_k_traces_with_the_package_completion():
    from lfbtheory.workloads import make_workload, replay

    path = str(data_dir() / FLAME_FILE)
    wl = make_workload("trace", n=96, path=path, layer=1)  # position 1 = recorded layer 3
    ours = np.stack(list(wl.batches(3, 5)))
    theirs = np.stack(list(replay(path, n=96, layer=3).batches(3, 5)))
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(ours.sum(axis=2), 1.0, rtol=0, atol=1e-12)


@given(e=st.integers(2, 64), k=st.integers(1, 8), n=st.integers(1, 600), tokens=st.integers(1, 600))
def test_batch_size_is_the_largest_with_integral_capacity(e, k, n, tokens):
    from lfbtheory.workloads.trace import batch_size_for

    k = min(k, e - 1) or 1
    try:
        m = batch_size_for(n, k, e, tokens)
    except ValueError:
        assert all((j * k) % e for j in range(1, min(n, tokens) + 1))
        return
    assert m <= min(n, tokens) and (m * k) % e == 0
    assert all((j * k) % e for j in range(m + 1, min(n, tokens) + 1))
