"""The online-LP lemmas measured (proofs/proof_15 ... proof_18): under i.i.d. batches no causal
rule gains dual regret in expectation; re-solving prices converge at rate 1/t while one-batch
(lag-1) prices keep a constant error; and on the two streams of Lemma 18 every existing rule
pays R_P + 3V >= T on one of them."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lfbtheory import simulate, solve_balanced
from lfbtheory.analysis.regret import regret_report
from lfbtheory.online import schedules as S
from lfbtheory.online import updates as U
from lfbtheory.workloads import make_workload, materialize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "proofs"))
import measurements as M  # noqa: E402
import proof_18_adversarial_lower_bound as P18  # noqa: E402

RULES = {
    "sign (published)": lambda t: U.sign(1e-3),
    "proportional 0.05": lambda t: U.proportional(0.05),
    "proportional 1/sqrt(t)": lambda t: U.proportional(S.inverse_sqrt(1.0)),
    "proportional 1/sqrt(T)": lambda t: U.proportional(1.0 / np.sqrt(t)),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_lemma_15_iid_batches_give_no_causal_rule_an_expected_dual_gain(rule):
    # E R_D(T) >= sum_t E[F(p_t) - F(p*)] >= 0: the mean over 8 i.i.d. streams of R_D(T) is not
    # significantly negative (a single stream may be)
    steps, values = 150, []
    wl = make_workload("stationary", n=32, n_experts=4, offset_seed=0)
    for seed in range(8):
        batches = materialize(wl, steps, np.random.SeedSequence([7, seed]))
        rep = regret_report(simulate(batches, 1, RULES[rule](steps)), batches, 1)
        values.append(float(rep.dual_regret[-1]))
    mean, se = float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(len(values)))
    assert mean >= -2 * se, (mean, se, values)


def test_lemma_17_re_solving_prices_converge_at_rate_1_over_t_and_lag_1_does_not():
    # the hypotheses of Lemma 17 measured without the rules: follow-the-leader prices (the
    # pooled optimum of the first t batches) against p* of the expected dual
    n, e, k = 64, 8, 1
    wl = make_workload("stationary", n=n, n_experts=e, offset_seed=0)
    theta = np.asarray(wl.offsets(0))
    pstar = M.sigmoid_optimum(theta)
    pstar -= pstar.mean()
    cap = n * k // e
    prefixes = (1, 8, 64)
    errors = {t: [] for t in prefixes}
    for rep in range(6):
        batches = materialize(wl, max(prefixes), np.random.SeedSequence([11, rep]))
        for t in prefixes:
            p = solve_balanced(np.concatenate(list(batches[:t])), k, capacity=t * cap).bias
            errors[t].append(float(np.sum((p - p.mean() - pstar) ** 2)))
    e_t = {t: float(np.mean(v)) for t, v in errors.items()}
    scaled = [t * e_t[t] for t in prefixes]
    assert e_t[1] > e_t[8] > e_t[64]  # the pooled past converges
    assert max(scaled) / min(scaled) < 4  # t e_t ~ C (rate 1/t), measured 0.003 ... 0.008
    assert e_t[1] > 20 * e_t[64]  # one batch's price (lag-1) keeps a constant error


@pytest.mark.parametrize("rule", sorted(RULES))
def test_lemma_18_every_rule_pays_linear_regret_plus_violation_on_one_stream(rule):
    periods = 200
    t = 2 * periods
    costs = []
    for stream in P18.streams(periods):
        rep = regret_report(simulate(stream, 1, RULES[rule](t)), stream, 1)
        costs.append(float(rep.primal_regret[-1] + 3 * rep.violation[-1]))
    assert max(costs) >= t, costs  # Lemma 18 (b): R_P + 3V >= T on one of the two streams
    assert sum(costs) >= 2 * t - 1e-9
