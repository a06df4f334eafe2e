"""The learned-router testbed: bias out of the gradient and the gate weights, the aux loss's
closed form (proofs lemma 9), a file-level corpus split, bit-identical seeded runs, clear
configuration errors, and the package's router conformance suite on the testbed router."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="the testbed needs torch (pip install 'lfbtheory[testbed]')"
)

from lfbtheory import route  # noqa: E402
from lfbtheory.testbed.balancing import (  # noqa: E402
    TorchLFBRouter,
    aux_loss,
    expert_choice_mask,
    make_rule,
    topk_select,
)
from lfbtheory.testbed.corpus import is_validation, list_files, load_corpus  # noqa: E402
from lfbtheory.testbed.model import ModelConfig, MoELayer  # noqa: E402
from lfbtheory.testbed.run import TestbedConfig, preset, run_testbed  # noqa: E402
from lfbtheory.testbed.train import Method, TrainConfig, train_run  # noqa: E402

TINY_MODEL = ModelConfig(d_model=16, n_heads=2, d_expert=16, seq_len=16, n_experts=8, k=2)
TINY_TRAIN = TrainConfig(
    steps=6,
    batch_size=4,
    warmup=2,
    eval_windows=8,
    curve_every=3,
    curve_windows=4,
    interference_every=2,
    record_tokens=8,
)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(max_bytes=200_000)


def test_lfb_bias_gets_no_gradient_and_never_enters_gate_weights():
    torch.manual_seed(0)
    layer = MoELayer(TINY_MODEL)
    layer.attach_router(TorchLFBRouter(8, 2, make_rule("sign", 1e-3)))
    assert "bias" not in dict(layer.named_parameters())
    assert not layer.bias.requires_grad
    x = torch.randn(2, 16, 16, requires_grad=True)
    y, _ = layer(x)
    y.pow(2).sum().backward()
    assert layer.bias.grad is None
    assert layer.gate.weight.grad is not None and torch.any(layer.gate.weight.grad != 0)
    # weights of an unchanged selected set do not depend on the bias, and are the unbiased
    # scores normalised over the selected experts
    s = torch.rand(64, 8, dtype=torch.float64)
    b1 = torch.randn(8, dtype=torch.float64) * 0.05
    b2 = b1 + torch.randn(8, dtype=torch.float64) * 0.03
    e1, w1 = topk_select(s, b1, 2)
    e2, w2 = topk_select(s, b2, 2)
    same = (e1.sort(dim=1)[0] == e2.sort(dim=1)[0]).all(dim=1)
    assert same.any()
    o1, o2 = e1.argsort(dim=1), e2.argsort(dim=1)
    torch.testing.assert_close(w1.gather(1, o1)[same], w2.gather(1, o2)[same], rtol=0, atol=0)
    g = s.gather(1, e1)
    torch.testing.assert_close(w1, g / g.sum(dim=1, keepdim=True))


def test_selection_is_topk_of_biased_scores_like_the_package_route():
    rng = np.random.default_rng(3)
    s = rng.random((200, 16))
    b = rng.normal(0, 0.1, 16)
    ex, w = topk_select(torch.from_numpy(s), torch.from_numpy(b), 2)
    ref = route(s, k=2, bias=b)
    np.testing.assert_array_equal(ex.numpy(), ref.experts)
    np.testing.assert_allclose(w.numpy(), ref.weights, rtol=1e-12)


@pytest.mark.parametrize("seq_len", [None, 8])
def test_aux_loss_is_alpha_E_sum_f_P(seq_len):
    """Lemma 9: l_aux = alpha E sum_i f_i P_i, f_i = c_i/(nK), P_i = mean_t q_ti."""
    rng = np.random.default_rng(1)
    n, e, k, alpha = 32, 8, 2, 1e-2
    logits = rng.normal(size=(n, e))
    s = 1 / (1 + np.exp(-logits))
    q = s / s.sum(axis=1, keepdims=True)
    experts = route(s, k=k).experts
    groups = (
        [slice(0, n)] if seq_len is None else [slice(i, i + seq_len) for i in range(0, n, seq_len)]
    )
    want = np.mean(
        [
            alpha
            * e
            * np.sum(
                np.bincount(experts[g].ravel(), minlength=e)
                / (q[g].shape[0] * k)
                * q[g].mean(axis=0)
            )
            for g in groups
        ]
    )
    got = aux_loss(torch.from_numpy(q), torch.from_numpy(experts), e, k, alpha, seq_len=seq_len)
    np.testing.assert_allclose(float(got), want, rtol=1e-12)
    # (a) at uniform routing the loss equals alpha
    qu = np.full((n, e), 1 / e)
    ex_u = (np.arange(n * k).reshape(n, k)) % e
    got_u = aux_loss(torch.from_numpy(qu), torch.from_numpy(ex_u), e, k, alpha)
    np.testing.assert_allclose(float(got_u), alpha, rtol=1e-12)


def test_expert_choice_gives_every_expert_exactly_its_capacity_per_chunk():
    s = torch.rand(2, 32, 8)
    mask = expert_choice_mask(s, 2, 16)
    per_chunk = mask.reshape(2, 2, 16, 8).sum(dim=2)
    assert torch.all(per_chunk == 2 * 16 // 8)


def test_corpus_split_by_file_has_no_overlap(corpus, tmp_path):
    assert not set(corpus.train_files) & set(corpus.val_files)
    assert all(is_validation(f) for f in corpus.val_files)
    assert not any(is_validation(f) for f in corpus.train_files)
    rel = [r for r, _ in list_files()]
    assert not any(part in ("site-packages", "test") for r in rel for part in r.split("/")[:-1])
    # the split rule depends on the relative path only, not on which other files exist
    for name in ("a.py", "pkg/b.py", "pkg/c.py", "d.py"):
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"# {name}\n")
    files = [r for r, _ in list_files(tmp_path)]
    assert files == sorted(files) and len(files) == 4
    assert [is_validation(f) for f in files] == [is_validation(f) for f in sorted(files)]
    assert corpus.files_hash == load_corpus(max_bytes=200_000).files_hash


def test_a_seeded_run_is_bit_identical(corpus):
    m = Method("lfb", rule="sign", u=1e-2)
    a = train_run(TINY_MODEL, TINY_TRAIN, m, 5, corpus, record=True)
    b = train_run(TINY_MODEL, TINY_TRAIN, m, 5, corpus, record=True)
    for key in ("train_bpb", "maxvio_batch", "bias", "interference_cos", "recorded_scores"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["val"] == b["val"]
    c = train_run(TINY_MODEL, TINY_TRAIN, m, 6, corpus)
    assert not np.array_equal(a["train_bpb"], c["train_bpb"])
    assert np.any(a["bias"][-1] != 0)  # the bias did move


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ModelConfig(k=20), "model.k"),
        (lambda: ModelConfig(gate="relu"), "model.gate"),
        (lambda: ModelConfig(d_model=30, n_heads=4), "model.d_model"),
        (lambda: TrainConfig(steps=0), "train.steps"),
        (lambda: TrainConfig(lr=-1.0), "train.lr"),
        (lambda: Method("aux", alpha=-1e-3), "method.alpha"),
        (lambda: Method("aux", alpha=1e-3, scope="token"), "method.scope"),
        (lambda: Method("lfb", rule="adam"), "method.rule"),
        (lambda: Method("moe"), "method.kind"),
        (
            lambda: replace(
                preset("quick"), methods=(Method("expert_choice", chunk=12),), record=""
            ),
            "method.chunk",
        ),
        (lambda: replace(preset("quick"), seeds=()), "seeds"),
        (lambda: replace(preset("quick"), record="none"), "record"),
        (lambda: TestbedConfig.from_dict({"modle": {}}), "modle"),
        (lambda: TestbedConfig.from_dict({"train": {"stepz": 3}}), "stepz"),
        (lambda: preset("huge"), "preset"),
    ],
)
def test_bad_configuration_raises_value_error_naming_the_field(build, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build()


def test_config_round_trips_through_json():
    cfg = preset("quick")
    assert TestbedConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("rule", ["sign", "proportional", "deepseek_v3"])
def test_testbed_router_passes_the_conformance_suite(rule):
    from lfbtheory.adapters.torch import from_torch
    from lfbtheory.testing.conformance import Config, run_conformance

    report = run_conformance(
        from_torch(TorchLFBRouter(8, 2, make_rule(rule, 1e-3, stop_step=3))),
        config=Config(causality_examples=30, drift_steps=50),
    )
    assert report.ok, str(report)
    assert "update_oracle" in report.passed and "gate_weights_bias_free" in report.passed


def test_run_and_report_write_the_result_folder(tmp_path):
    from lfbtheory.testbed.report import write_results

    cfg = TestbedConfig(
        model=TINY_MODEL,
        train=TINY_TRAIN,
        methods=(
            Method("none"),
            Method("aux", alpha=1e-2),
            Method("lfb", u=1e-2),
            Method("expert_choice", chunk=8),
        ),
        seeds=(0, 1),
        workers=1,
        max_corpus_bytes=200_000,
        record="lfb_sign_0.01",
        name="tiny",
    )
    res = run_testbed(cfg, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("run-*.npz"))) == len(cfg.methods) * len(cfg.seeds)
    assert res["cache"] == {"hits": 0, "runs": len(cfg.methods) * len(cfg.seeds)}
    resumed = run_testbed(cfg, cache_dir=tmp_path / "cache")  # every run comes from the cache
    assert resumed["cache"]["hits"] == len(cfg.methods) * len(cfg.seeds)
    for a, b in zip(res["runs"], resumed["runs"], strict=True):
        assert a.keys() == b.keys()
        for name, v in a.items():
            if isinstance(v, np.ndarray):
                np.testing.assert_array_equal(v, b[name])
                assert v.dtype == b[name].dtype
            else:
                assert v == b[name], name
    rep = write_results(res, tmp_path)
    for name in (
        "config.json",
        "results.csv",
        "results.json",
        "leakage.csv",
        "verdicts.json",
        "regret.json",
        "runs.json",
        "runs.npz",
        "pareto.png",
        "training_curves.png",
        "interference.png",
        "regret.png",
        "summary.txt",
        "verdicts.md",
        "maxvio_curves.csv",
        "maxvio_curves.png",
    ):
        assert (tmp_path / name).is_file(), name
    assert {r["setting"] for r in rep["table"]} == {m.label for m in cfg.methods}
    assert TestbedConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == cfg
    assert rep["regret"]["steps"] == TINY_TRAIN.steps
    assert all(v["verdict"] for v in rep["verdicts"])
    leak = [v for v in rep["verdicts"] if v["claim"].startswith("Expert Choice leaks")]
    assert leak and leak[0]["control_max_abs_delta_logit"] == 0.0
    from lfbtheory.testbed.report import load_results

    again = load_results(tmp_path)  # the folder alone reproduces the tables
    from lfbtheory.fileio import dumps_json
    from lfbtheory.testbed.run import summarize

    assert dumps_json(summarize(again)) == dumps_json(rep["table"])  # NaN-aware equality


def test_cli_help_does_not_import_torch():
    code = (
        "import sys, lfbtheory.cli as c; c.build_parser(); "
        "print('testbed' in c.build_parser().format_help(), 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent,
    )
    assert out.stdout.split() == ["True", "False"]


ONE_RUN = dict(
    model=TINY_MODEL,
    train=replace(TINY_TRAIN, steps=2, curve_every=2, interference_every=2),
    methods=(Method("lfb", u=1e-2),),
    seeds=(0,),
    workers=1,
    max_corpus_bytes=200_000,
    record="",
    name="one",
)


@pytest.fixture(scope="module")
def one_run_cache(tmp_path_factory):
    cfg = TestbedConfig(**ONE_RUN)
    cache = tmp_path_factory.mktemp("one_run") / "cache"
    return cfg, cache, run_testbed(cfg, cache_dir=cache)


class _Planted:
    """Unpickling this object creates the file ``marker``: a planted cache file must never
    get that far."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "executed"))


@pytest.mark.parametrize("kind", ["raw_pickle", "object_array_npz", "wrong_key", "not_a_zip"])
def test_a_planted_cache_file_is_refused_and_never_executed(tmp_path, kind, one_run_cache):
    import pickle
    import shutil

    from lfbtheory.fileio import FileFormatError
    from lfbtheory.testbed.run import load_run, save_run

    cfg, src, first = one_run_cache
    cache = tmp_path / "cache"
    shutil.copytree(src, cache)
    (path,) = cache.glob("run-*.npz")
    marker = tmp_path / "marker"
    if kind == "raw_pickle":
        path.write_bytes(pickle.dumps(_Planted(str(marker))))
    elif kind == "object_array_npz":
        with open(path, "wb") as f:
            np.savez(f, record=np.array([_Planted(str(marker))], dtype=object))
    elif kind == "wrong_key":  # a valid record copied under another run's name
        save_run(path, first["runs"][0], key="0" * 64)
    else:
        path.write_bytes(b"\x80\x04not a zip file")
    with pytest.raises(FileFormatError, match="testbed cache file") as err:
        run_testbed(cfg, cache_dir=cache)
    assert str(path) in str(err.value)
    assert not marker.exists()
    with pytest.raises(FileFormatError):
        load_run(path) if kind != "wrong_key" else load_run(path, key="1" * 64)
    assert not marker.exists()


def test_the_cache_key_holds_the_code_identity(tmp_path):
    """A temporary copy of the package: an unchanged copy reuses its cache, an edited copy
    (one comment appended to a module the testbed does not even import) recomputes."""
    import shutil

    import lfbtheory

    pkg = tmp_path / "src" / "lfbtheory"
    shutil.copytree(
        Path(lfbtheory.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__")
    )
    cfg_text = json.dumps(json.dumps(TestbedConfig(**ONE_RUN).to_dict()))
    script = f"""
import json, pathlib
from lfbtheory.testbed.run import TestbedConfig, run_testbed
cfg = TestbedConfig.from_dict(json.loads({cfg_text}))
cache = pathlib.Path({str(tmp_path / "cache")!r})
hits = [run_testbed(cfg, cache_dir=cache)["cache"]["hits"]]
hits.append(run_testbed(cfg, cache_dir=cache)["cache"]["hits"])
with open({str(pkg / "metrics.py")!r}, "a") as f:
    f.write("\\n# edited\\n")
hits.append(run_testbed(cfg, cache_dir=cache)["cache"]["hits"])
print(json.dumps(hits), len(list(cache.glob("run-*.npz"))))
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(pkg.parent), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[0,", "1,", "0]", "2"]


# ---------------------------------------------------------------------------------------------
# paired design and verdicts


def test_every_method_of_a_seed_shares_init_batches_and_eval_windows(corpus):
    """Common random numbers: the initial weights, the batch order and the evaluation windows
    depend on the seed only, never on the method."""
    train = replace(TINY_TRAIN, steps=3)
    runs = {
        (m.label, s): train_run(TINY_MODEL, train, m, s, corpus)
        for m in (
            Method("none"),
            Method("aux", alpha=1e-2),
            Method("lfb", u=1e-2),
            Method("expert_choice", chunk=8),
        )
        for s in (0, 1)
    }
    for key in ("init_digest", "batch_digest", "eval_digest"):
        for s in (0, 1):
            assert len({r[key] for (_, seed), r in runs.items() if seed == s}) == 1, key
    for key in ("init_digest", "batch_digest"):
        assert runs[("none", 0)][key] != runs[("none", 1)][key]
    # the methods did differ in what they trained
    assert not np.array_equal(
        runs[("none", 0)]["train_bpb"], runs[("aux_batch_0.01", 0)]["train_bpb"]
    )


def test_sign_flip_p_is_the_exact_enumeration():
    import itertools

    from lfbtheory.testbed.paired import sign_flip_p

    d = np.array([0.3, -0.1, 0.5, 0.2, 0.05])
    obs = abs(d.mean())
    ref = np.mean(
        [abs(np.mean(np.array(e) * d)) >= obs - 1e-15 for e in itertools.product((1, -1), repeat=5)]
    )
    assert sign_flip_p(d) == ref
    assert sign_flip_p([1.0, 2.0, 3.0]) == 2 / 8  # the smallest attainable p for n = 3


def test_paired_interval_and_mde_match_scipy():
    from scipy import stats

    from lfbtheory.testbed.paired import paired_stats

    d = np.array([0.3, -0.1, 0.5, 0.2, 0.05])
    st = paired_stats(d)
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    np.testing.assert_allclose([st["ci_low"], st["ci_high"]], [ci.low, ci.high], rtol=1e-12)
    se = d.std(ddof=1) / np.sqrt(5)
    np.testing.assert_allclose(st["mde"], (stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) * se)


def _synthetic(rng, n, effect, shared_sd, pair_sd):
    """n seeds: both methods share a seed effect N(0, shared_sd^2); a = seed + effect + noise,
    b = seed + noise, so the paired difference has sd pair_sd * sqrt(2)."""
    seed = rng.normal(0, shared_sd, n)
    a = seed + effect + rng.normal(0, pair_sd, n)
    b = seed + rng.normal(0, pair_sd, n)
    return a, b


def test_paired_verdict_resolves_what_welch_cannot():
    from lfbtheory.testbed.paired import paired_stats, verdict_of, welch

    rng = np.random.default_rng(4)
    a, b = _synthetic(rng, 6, -0.05, 0.5, 0.005)  # truth: a < b by 0.05
    assert not welch(a, b)["resolved"]
    st = paired_stats(a - b)
    assert st["ci_low"] < -0.05 < st["ci_high"] < 0
    assert verdict_of(st, claim_sign=-1)["verdict"] == "reproduces"
    assert verdict_of(st, claim_sign=+1)["verdict"] == "refuted"
    assert st["mde"] < 0.05


def test_paired_verdict_never_claims_an_effect_under_the_null():
    from lfbtheory.testbed.paired import paired_stats, verdict_of

    rng = np.random.default_rng(5)
    claims = 0
    for _ in range(400):
        a, b = _synthetic(rng, 6, 0.0, 0.5, 0.01)
        v = verdict_of(paired_stats(a - b), claim_sign=-1)["verdict"]
        claims += v == "reproduces"
        assert v == "reproduces" or v == "refuted" or v.startswith("not resolvable")
    # one-sided false claim rate <= alpha / 2 = 2.5 % (binomial slack: 4 %)
    assert claims / 400 <= 0.04
    d = np.array([1.0, -1.0, 1.0, -1.0, 0.5, -0.5])
    v = verdict_of(paired_stats(d), claim_sign=1)["verdict"]
    assert v.startswith("not resolvable") and "MDE" in v


def test_sign_flip_test_vetoes_a_resolved_t_interval_when_it_can():
    from lfbtheory.testbed.paired import paired_stats, verdict_of

    st = dict(paired_stats(np.array([0.011, 0.012, 0.010, 0.013, 0.011, 0.012, 0.010, 0.02])))
    assert st["ci_low"] > 0 and verdict_of(st, claim_sign=1)["verdict"] == "reproduces"
    st["p_sign_flip"] = 0.2  # a disagreeing distribution-free test (attainable at n = 8)
    v = verdict_of(st, claim_sign=1)
    assert v["verdict"].startswith("not resolvable") and "vetoed" in v["basis"]
    three = paired_stats([0.2, 0.21, 0.19])  # 2 / 2^3 > alpha: the t interval alone decides
    assert "interval only" in verdict_of(three, claim_sign=1)["basis"]
    assert verdict_of(three, claim_sign=1)["verdict"] == "reproduces"


# ---------------------------------------------------------------------------------------------
# leakage by intervention, interference against chance


def test_future_perturbation_control_is_zero_and_expert_choice_leaks():
    from lfbtheory.testbed.model import MoELM
    from lfbtheory.testbed.train import future_perturbation, set_determinism

    set_determinism(0, 1)
    model = MoELM(TINY_MODEL)
    w = torch.randint(
        0, 256, (16, TINY_MODEL.seq_len + 1), generator=torch.Generator().manual_seed(1)
    )
    ctrl = future_perturbation(model, w, 8, np.random.default_rng(1))
    assert ctrl["max_abs_delta_logit"] == 0.0 and ctrl["mean_abs_delta_bpb"] == 0.0
    ec = future_perturbation(
        model, w, 8, np.random.default_rng(1), routing="expert_choice", chunk=TINY_MODEL.seq_len
    )
    assert ec["max_abs_delta_logit"] > 0 and ec["mean_abs_delta_bpb"] > 0
    assert ec["cut"] == TINY_MODEL.seq_len // 2


def test_interference_null_matches_the_sphere_and_flags_chance():
    from lfbtheory.testbed.run import interference_claim, interference_null

    rng = np.random.default_rng(0)
    dim, m, n = 512, 10, 3
    null = interference_null(dim, m, n, rng, draws=4000)
    sd = 1 / np.sqrt(dim * m * n)
    np.testing.assert_allclose(null["random_sd"], sd, rtol=0.06)
    lo, hi = null["random_interval"]
    assert lo < 0 < hi and abs(hi - 1.96 * sd) < 0.15 * sd

    def results(cos_sd_shift, aligned):
        runs = []
        for s in range(n):
            g_lm = rng.standard_normal((m, dim))
            g_aux = rng.standard_normal((m, dim)) + aligned * g_lm
            cos = (
                np.sum(g_aux * g_lm, 1)
                / np.linalg.norm(g_aux, axis=1)
                / np.linalg.norm(g_lm, axis=1)
            )
            runs.append(
                {
                    "label": "aux_batch_0.001",
                    "seed": s,
                    "interference_cos": cos + cos_sd_shift,
                    "interference_dim": dim,
                    "grad_aux": g_aux,
                    "grad_lm": g_lm,
                }
            )
        return {"runs": runs, "config": {"model": {"n_layers": 1, "n_experts": 8, "d_model": 64}}}

    chance = interference_claim(results(0.0, 0.0), "aux_batch_0.001")
    assert chance["verdict"] == "not distinguishable from chance"
    aligned = interference_claim(results(0.0, 0.5), "aux_batch_0.001")
    assert aligned["verdict"].startswith("refuted")
    opposed = interference_claim(results(0.0, -0.5), "aux_batch_0.001")
    assert opposed["verdict"] == "reproduces"
    bare = results(0.0, 0.0)  # no recorded gradients: the random-direction null alone
    for r in bare["runs"]:
        del r["grad_aux"], r["grad_lm"]
    row = interference_claim(bare, "aux_batch_0.001")
    assert "permuted_interval" not in row["null"]
    assert row["chance_interval"] == row["null"]["random_interval"]


def test_training_trace_round_trips_and_feeds_the_two_timescale_view(corpus, tmp_path):
    from lfbtheory.testbed.trace import snapshot_stream, training_trace, two_timescale
    from lfbtheory.traces import read_trace, write_trace
    from lfbtheory.workloads.trace import TraceWorkload

    run = train_run(TINY_MODEL, TINY_TRAIN, Method("lfb", u=1e-2), 0, corpus, record=True)
    tr = training_trace(
        run["recorded_scores"], run["recorded_bias"], k=TINY_MODEL.k, every=2, model="tiny", seed=0
    )
    path = write_trace(tr, tmp_path / "t.npz")
    back = read_trace(path)
    assert back.layer_names == ("blocks.0.moe@step0", "blocks.0.moe@step2", "blocks.0.moe@step4")
    np.testing.assert_array_equal(back.values, run["recorded_scores"][::2])
    np.testing.assert_array_equal(back.bias, run["recorded_bias"][::2])
    assert back.values.shape[2] == TINY_MODEL.n_experts  # all E scores, none completed
    w = TraceWorkload(str(path), n=4, layer=2)
    assert w.n_experts == TINY_MODEL.n_experts
    view = two_timescale(back, make_rule("sign", 1e-2))
    assert view["steps"] == 3 and set(view["fixed"]) == {"step0", "step2", "step4"}
    assert len(snapshot_stream(back)) == 3


def test_the_shipped_learned_router_trace_holds_every_score():
    from lfbtheory.traces import read_trace
    from lfbtheory.workloads.data import LEARNED_ROUTER_FILE, data_dir

    path = data_dir() / LEARNED_ROUTER_FILE
    assert path.stat().st_size <= 2_200_000
    tr = read_trace(path)
    assert tr.values.shape == (200, 128, 16) and tr.kind == "scores" and tr.k == 2
    v = np.asarray(tr.values)
    assert np.all((v > 0) & (v < 1))  # sigmoid scores, every entry recorded (none completed)
    assert tr.layer_names[0] == "blocks.0.moe@step0" and tr.layer_names[-1].endswith("@step1990")
    assert tr.bias is not None and np.all(tr.bias[0] == 0) and np.any(tr.bias[-1] != 0)
