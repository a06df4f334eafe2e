"""Streamed passes: chunk sources, the fixed reduction order, the certified pooled optimum
against the in-memory exact solver, and a Dask LocalCluster run equal bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from lfbtheory.experiments import streamed as S
from lfbtheory.lp import solve_balanced
from lfbtheory.workloads import make_workload, materialize


def _source(t=12, n=64, e=16, chunk=5):  # type: ignore[no-untyped-def]
    return S.SeededSource(make_workload("stationary", n=n, n_experts=e), t, 0, chunk)


def test_sequential_chunks_are_bit_identical_to_materialize():
    w = make_workload("stationary", n=32, n_experts=8)
    chunks = list(S.sequential_chunks(w, 11, 3, 4))
    assert [len(c) for c in chunks] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate(chunks), materialize(w, 11, 3))


def test_seeded_chunks_are_reproducible_random_access_and_share_offsets(tmp_path):
    src = _source()
    a = np.concatenate([src.chunk_at(i) for i in range(src.n_chunks)])
    assert a.shape == (12, 64, 16)
    np.testing.assert_array_equal(src.chunk_at(1), _source().chunk_at(1))
    assert not np.array_equal(src.chunk_at(0)[:2], src.chunk_at(1)[:2])
    path = tmp_path / "trace.npy"
    np.save(path, a)
    mm = S.ArraySource.from_npy(str(path), 5)
    np.testing.assert_array_equal(np.concatenate([mm.chunk_at(i) for i in range(3)]), a)
    with pytest.raises(ValueError, match="i.i.d."):
        S.SeededSource(make_workload("drifting", n=8, n_experts=4), 4, 0, 2)


def test_tree_sum_is_a_fixed_pairwise_order():
    parts = [np.float64(x) for x in (1e16, 1.0, -1e16, 1.0, 3.0)]
    assert S.tree_sum(parts) == ((1e16 + 1.0) + (-1e16 + 1.0)) + 3.0
    with pytest.raises(ValueError):
        S.tree_sum([])


@pytest.mark.parametrize("shape", [(12, 64, 16, 2, 5), (6, 256, 32, 4, 4)])
def test_screened_pooled_optimum_matches_the_in_memory_solver(shape):
    t, n, e, k, chunk = shape
    src = _source(t, n, e, chunk)
    arr = np.concatenate([src.chunk_at(i) for i in range(src.n_chunks)])
    opt = solve_balanced(arr.reshape(-1, e), k)
    start = np.mean([solve_balanced(b, k).bias for b in arr[:3]], axis=0)
    res = S.screened_optimum(src, k, start)
    assert 0 <= res.gap <= 1e-9 * abs(opt.objective) or abs(res.gap) <= 1e-9 * abs(opt.objective)
    assert abs(res.value - opt.objective) <= 1e-9 * abs(opt.objective)
    assert abs(res.dual - opt.objective) <= 1e-9 * abs(opt.objective)
    assert res.value <= opt.objective + 1e-9 * abs(opt.objective)  # a feasible assignment
    assert S.pooled_value(src, k, res.price) == res.dual


def test_cutting_plane_comparator_certifies_its_gap_on_a_small_stream():
    src = _source(8, 32, 8, 3)
    arr = np.concatenate([src.chunk_at(i) for i in range(src.n_chunks)])
    opt = solve_balanced(arr.reshape(-1, 8), 2).objective
    res = S.pooled_comparator(src, 2, max_passes=150)
    assert res.converged and res.lower <= opt + 1e-9 * opt and res.upper >= opt - 1e-9 * opt
    assert res.rel_gap <= 1e-9


def test_a_dask_local_cluster_gives_the_same_numbers_bit_for_bit():
    distributed = pytest.importorskip("distributed", reason="needs dask.distributed (extra dask)")
    from lfbtheory.experiments.executors import DaskExecutor

    src = _source(10, 64, 16, 3)
    p = np.linspace(-0.1, 0.1, 16)
    local = S.map_chunks(S.chunk_dual, src, (2, p))
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster:  # fmt: skip
        with distributed.Client(cluster) as client:
            ex = DaskExecutor(client=client)
            remote = S.map_chunks(S.chunk_dual, src, (2, p), ex)
            value = S.pooled_value(src, 2, p, ex)
            res = S.screened_optimum(src, 2, p, executor=ex)
    for a, b in zip(local, remote, strict=True):
        assert a.tobytes() == b.tobytes()
    assert value == S.pooled_value(src, 2, p)
    here = S.screened_optimum(src, 2, p)
    assert (res.value, res.dual, res.undecided) == (here.value, here.dual, here.undecided)
    assert res.price.tobytes() == here.price.tobytes()


def test_a_streamed_point_reproduces_the_in_memory_ledger():
    import lfbtheory as lfb
    from lfbtheory.analysis.regret import regret_report

    src = _source(12, 64, 16, 5)
    arr = np.concatenate([src.chunk_at(i) for i in range(src.n_chunks)])
    rule = lfb.updates.sign(1e-2)
    pt = S.streamed_point(src, 2, [rule], labels=["sign"], n_devices=4)
    rep = regret_report(lfb.simulate(arr, 2, rule), arr, 2).summary()
    got = pt.summary["sign"]
    for key in ("dual_regret", "primal_regret", "dynamic_gap", "dual_dynamic_regret"):
        assert abs(got[key] - rep[key]) <= 1e-9 * max(1.0, abs(rep[key])), key
    assert got["device_bound_violations"] == 0
