# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · The routing bias is the dual price
#
# Loss-Free Balancing (Wang et al., arXiv 2408.15664, Sec. 3; used in DeepSeek-V3,
# arXiv 2412.19437, Sec. 2.1.2) keeps one bias $b_i$ per expert, routes token $t$ to the
# top-$K$ experts of $s_{t,i} + b_i$, and nudges $b$ after each batch. This notebook shows,
# on one batch and with every number computed below, *why* that works: the bias is the dual
# price of the expert-capacity constraint of the batch assignment LP.
#
# The LP for one batch ($n$ tokens, $E$ experts, $K$ per token, capacity $L = nK/E$):
#
# $$\max_x \sum_{t,i} s_{t,i} x_{t,i}\quad\text{s.t.}\quad \sum_i x_{t,i} = K,\quad
# \sum_t x_{t,i} = L,\quad 0 \le x \le 1 .$$
#
# Its constraint matrix is a bipartite incidence matrix (totally unimodular), so the LP has
# an integral optimum: the exact balanced assignment (the BASE layer solves this problem,
# arXiv 2103.16716). Dualising only the expert constraints with prices $p$ gives
#
# $$D(p) = \sum_t \operatorname{topK\text{-}sum}_i (s_{t,i} + p_i) - L \sum_i p_i ,$$
#
# convex, piecewise linear, with subgradient $\mathrm{load}(p) - L$, where $\mathrm{load}(p)$
# counts the tokens that top-$K$ routing with bias $p$ sends to each expert.

# %%
import contextlib
import os
import sys

import matplotlib.pyplot as plt
import numpy as np

import lfbtheory as lfb
from lfbtheory.workloads import make_workload

SMALL = os.environ.get("LFB_NOTEBOOK_SMALL") == "1"  # "1" in CI: smaller batch, coarser grid
N, E, K = (128, 8, 2) if SMALL else (512, 16, 2)
GRID = 61 if SMALL else 401
SEED = 0


@contextlib.contextmanager
def quiet():
    """Silence output written straight to file descriptor 1 (the HiGHS solver's banner)."""
    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


print(
    f"size: {'small' if SMALL else 'full'}; n={N} tokens, E={E} experts, K={K}, L=nK/E={N * K // E}"
)

# %% [markdown]
# ## One batch, routed by plain top-K
#
# The scores come from the `stationary` workload: sigmoid gates of logits
# $a z_i + \sigma \varepsilon_{t,i}$ with a fixed per-expert popularity $z_i$ (DeepSeek-V3's
# sigmoid gate). Popular experts attract more than their share, so plain top-$K$ is unbalanced.
# MaxVio $=(\max_i \mathrm{load}_i - L)/L$ is the imbalance measure of arXiv 2408.15664 Sec. 4.1.

# %%
scores = next(make_workload("stationary", n=N, n_experts=E).batches(1, SEED))
L = N * K // E
plain = lfb.route(scores, K)
print("plain top-K loads:", plain.loads.tolist())
print(f"MaxVio (plain top-K) = {lfb.maxvio(plain.loads):.3f}")
plain_reward = float(np.take_along_axis(scores, plain.experts, axis=1).sum())
print(f"sum of selected scores (plain top-K, the unconstrained maximum) = {plain_reward:.4f}")

# %% [markdown]
# ## The exact balanced assignment and its prices
#
# `lfb.solve_balanced` solves the LP with the cvxpy reference oracle (HiGHS simplex), checks
# that the optimum is integral and feasible, and returns the optimal expert prices
# `opt.bias` (shifted to mean zero: only differences of prices matter). Balance costs a little
# score: the gap to the plain top-$K$ sum is the price of balance on this batch. (`quiet()`
# above only hides the solver's start-up banner.)

# %%
with quiet():
    opt = lfb.solve_balanced(scores, K, method="cvxpy")
print("exact balanced loads:", opt.loads.tolist())
print(
    f"LP optimum = {opt.objective:.4f}   (plain top-K: {plain_reward:.4f}; "
    f"cost of balance {plain_reward - opt.objective:.4f} = "
    f"{100 * (plain_reward - opt.objective) / plain_reward:.2f}%)"
)
print("optimal prices p* (mean 0):", np.round(opt.bias, 4).tolist())

# %% [markdown]
# ## The prices, used as a routing bias, balance plain top-K — up to ties
#
# Routing with bias $p^*$ is the Lagrangian best response, so top-$K$ of $s + p^*$ should
# reproduce the balanced assignment. It does, except on tokens whose $K$-th and $(K+1)$-th
# biased scores are *exactly equal*: at the optimum, prices are set so that some tokens sit on
# a tie (otherwise a price could move further). `lfb.tie_margin` gives each token's gap between
# its $K$-th and $(K+1)$-th biased score; the routing's deterministic tie rule (lower expert
# index wins) resolves those ties in a way that need not balance.

# %%
biased = lfb.route(scores, K, opt.bias)
margin = lfb.tie_margin(scores, K, opt.bias)
tied = margin <= 1e-12
same = np.all(np.sort(biased.experts, 1) == np.sort(opt.experts, 1), axis=1)
print("top-K of s + p* loads:", biased.loads.tolist())
print(
    f"MaxVio (biased by p*) = {lfb.maxvio(biased.loads):.3f}   "
    f"vs plain {lfb.maxvio(plain.loads):.3f}"
)
print(f"tokens with tie margin 0 at p*: {int(tied.sum())} of {N}")
print(
    f"tokens routed differently from the exact assignment: {int((~same).sum())}; "
    f"all of them tied: {bool(np.all(tied[~same]))}"
)
print(f"smallest non-zero margin: {margin[~tied].min():.2e}")

# %% [markdown]
# So "top-$K$ with the optimal bias is balanced" is true exactly *up to the tied tokens*: every
# token that routing with $p^*$ sends elsewhere than the exact assignment is a tied token, and
# breaking just those ties as the LP does restores loads of exactly $L$.
#
# ## Strong duality: $\min_p D(p)$ equals the LP optimum
#
# Weak duality says $D(p) \ge$ OPT for every $p$; strong duality says the minimum is attained
# at $p^*$. Adding the same constant to every price changes nothing ($D$ is flat along the
# all-ones direction, as $\sum_t$ top-$K$ gains $nK c$ and $L \sum_i p_i$ gains $ELc = nKc$).

# %%
rng = np.random.default_rng(SEED)
d_star = lfb.dual_objective(scores, k=K, bias=opt.bias)
d_zero = lfb.dual_objective(scores, k=K, bias=np.zeros(E))
d_random = [
    lfb.dual_objective(scores, k=K, bias=opt.bias + 0.05 * rng.normal(size=E)) for _ in range(200)
]
print(f"D(p*) - OPT = {d_star - opt.objective:.2e}")
print(
    f"D(0)  - OPT = {d_zero - opt.objective:.4f}   (D(0) is the plain top-K sum: "
    f"{d_zero - plain_reward:.2e} apart)"
)
print(f"min over 200 random p near p* of D(p) - OPT = {min(d_random) - opt.objective:.4f} (>= 0)")
shifted = lfb.dual_objective(scores, k=K, bias=opt.bias + 3.7)
print(f"D(p* + 3.7 * ones) - D(p*) = {shifted - d_star:.2e}")

# %% [markdown]
# ## D along a line through $p^*$, and the subgradient load $- L$
#
# Take the direction $d$ from $p^*$ towards the zero bias, normalised, and evaluate
# $D(p^* + \alpha d)$ on a grid: $\alpha = 0$ is $p^*$, $\alpha = \lVert p^*\rVert$ is $p = 0$
# (no bias). The curve is convex and piecewise linear with its minimum at $\alpha = 0$. Its
# slope at any $\alpha$ is $(\mathrm{load}(p) - L)\cdot d$ — the subgradient
# `lfb.dual_subgradient` — which the tangent lines drawn at two points confirm. The slope
# jumps wherever a token's routing changes (a tie between its $K$-th and $(K+1)$-th biased
# score): those are the kinks, located below by routing at every grid point.
#
# The per-expert check below compares central finite differences of $D$ with load $- L$ at a
# random bias (where, generically, no token is tied, so $D$ is differentiable there).

# %%
direction = -opt.bias / np.linalg.norm(opt.bias)
alphas = np.linspace(-1.5, 1.5, GRID) * np.linalg.norm(opt.bias)
dvals = np.array([lfb.dual_objective(scores, k=K, bias=opt.bias + a * direction) for a in alphas])
print(
    f"argmin over the grid: alpha = {alphas[np.argmin(dvals)]:.4f} "
    f"(grid step {alphas[1] - alphas[0]:.4f})"
)
print(
    f"D is convex on the grid: max second difference violation = "
    f"{max(0.0, -np.min(np.diff(dvals, 2))):.2e}"
)
routes = [np.sort(lfb.route(scores, K, opt.bias + a * direction).experts, 1) for a in alphas]
kinks = [alphas[i] for i in range(1, GRID) if not np.array_equal(routes[i], routes[i - 1])]
print(f"routing changes (kinks of D) between neighbouring grid points: {len(kinks)} of {GRID - 1}")

p_test = opt.bias + 0.05 * rng.normal(size=E)
g = lfb.dual_subgradient(scores, k=K, bias=p_test)
margin_test = lfb.tie_margin(scores, K, p_test).min()
h = min(1e-7, 0.25 * margin_test)  # a step smaller than every tie margin: D is linear there
fd = np.array(
    [
        (
            lfb.dual_objective(scores, k=K, bias=p_test + h * np.eye(E)[i])
            - lfb.dual_objective(scores, k=K, bias=p_test - h * np.eye(E)[i])
        )
        / (2 * h)
        for i in range(E)
    ]
)
print("load(p) - L      :", g.astype(int).tolist())
print("finite difference:", np.round(fd, 3).tolist())
print(
    f"max |difference| = {np.max(np.abs(fd - g)):.1e}   "
    f"(smallest tie margin at p: {margin_test:.1e}, h = {h:.0e})"
)

# %% [markdown]
# The published update $b_i \leftarrow b_i + u\,\mathrm{sign}(L - \mathrm{load}_i)$
# (arXiv 2408.15664, eq. 3) is therefore a sign-normalised dual subgradient *descent* step on
# $D$: it moves each price against the sign of its subgradient component. One step from $b = 0$
# with $u = 10^{-3}$ lowers $D$. But a subgradient step is **not** a descent method: near
# $p^*$ a step can cross a kink and raise $D$. Repeating the sign rule on this same batch with
# the published step and with a 10x larger one (chosen only to show the contrast) counts the
# steps on which $D$ went up, and compares one step with the distance to $p^*$:

# %%
u = 1e-3
b1 = u * np.sign(L - plain.loads)
d_one = lfb.dual_objective(scores, k=K, bias=b1)
print(f"D(0) - D(one sign step) = {d_zero - d_one:.4f} (> 0: descent)")
step_len = float(np.linalg.norm(b1))
print(
    f"one sign step has length u*sqrt(#experts moved) = {step_len:.4f}; ||p*|| = "
    f"{np.linalg.norm(opt.bias):.4f}, about {np.linalg.norm(opt.bias) / step_len:.0f} steps away"
)
T_REPEAT = 1500 if SMALL else 3000
for u_rep in (u, 10 * u):
    rep = lfb.simulate([scores] * T_REPEAT, K, lfb.updates.sign(u_rep))
    d_path = np.array([lfb.dual_objective(scores, k=K, bias=b) for b in rep.bias]) - opt.objective
    last = d_path[-T_REPEAT // 10 :]
    print(
        f"u={u_rep:g}: {T_REPEAT} sign steps on this batch, D went up on "
        f"{int(np.sum(np.diff(d_path) > 1e-12))}; D - OPT over the last {len(last)} steps "
        f"{last.min():.2e} .. {last.max():.2e}"
    )

# %% [markdown]
# Two outcomes are possible, and which one occurs depends on the batch. If the sign rule
# reaches a bias that balances the batch exactly, every sign is 0 and the bias stops there with
# a dual gap of 0 (the small CI run's batch with $u = 10^{-3}$ does). Otherwise it overshoots
# near $p^*$ for ever: $D$ goes up on many steps and the gap stays positive — the subgradient
# method's zigzag (the full-size batch does for both steps; notebook 02 finds the cycle exactly
# and notebook 07 draws it for three experts). The larger the step, the larger the gap it
# keeps.

# %%
fig, (ax1, ax3, ax2) = plt.subplots(1, 3, figsize=(16, 3.9))
ax1.plot(alphas, dvals - opt.objective, "k-", lw=1.5, label=r"$D(p^* + \alpha d) - \mathrm{OPT}$")
for a0, ls in ((alphas[GRID // 5], "--"), (alphas[4 * GRID // 5], ":")):
    p0 = opt.bias + a0 * direction
    slope = float(lfb.dual_subgradient(scores, k=K, bias=p0) @ direction)
    d0 = lfb.dual_objective(scores, k=K, bias=p0) - opt.objective
    ax1.plot(
        alphas,
        d0 + slope * (alphas - a0),
        ls=ls,
        lw=1.0,
        label=f"tangent, slope (load-L)·d = {slope:.0f}",
    )
ax1.axvline(0, color="r", lw=0.6, label="p*")
p0_alpha = float(np.linalg.norm(opt.bias))
ax1.axvline(p0_alpha, color="b", lw=0.6, ls="-.", label="p = 0 (no bias)")
ax1.plot(
    [p0_alpha - step_len, p0_alpha],
    [0.9 * np.ptp(dvals)] * 2,
    "m-",
    lw=3,
    label=f"one sign step, u = {u:g}",
)
ax1.set(
    xlabel=r"$\alpha$ (along $d$ from $p^*$ towards 0)",
    ylabel="dual gap",
    ylim=(-0.05 * np.ptp(dvals), 1.05 * np.ptp(dvals)),
    title="D along a line through p*",
)
ax1.legend(fontsize=7)
# zoom to +-5 sign steps around p*: D is piecewise linear, its slope changes at the kinks (dotted)
az = np.linspace(-5 * step_len, 5 * step_len, 201 if SMALL else 801)
dz = [lfb.dual_objective(scores, k=K, bias=opt.bias + a * direction) - opt.objective for a in az]
rz = [np.sort(lfb.route(scores, K, opt.bias + a * direction).experts, 1) for a in az]
kz = [az[i] for i in range(1, len(az)) if not np.array_equal(rz[i], rz[i - 1])]
ax3.plot(az, dz, "k-", lw=1.2)
for kx in kz:
    ax3.axvline(kx, color="0.6", lw=0.6, ls=":")
ax3.axvline(0, color="r", lw=0.6)
ax3.plot([-2.5 * step_len, -1.5 * step_len], [max(dz) * 0.9] * 2, "m-", lw=3)
ax3.set(
    xlabel=r"$\alpha$ (zoom: +-5 sign steps around p*; bar: one step)",
    ylabel="dual gap",
    title=f"zoom: {len(kz)} kinks where a token's routing changes",
)
x = np.arange(E)
ax2.bar(x - 0.27, plain.loads - L, 0.27, label="plain top-K")
ax2.bar(x, biased.loads - L, 0.27, label="top-K of s + p*", hatch="//")
ax2.bar(x + 0.27, opt.loads - L, 0.27, label="exact assignment (all 0)")
ax2.axhline(0, color="k", lw=0.8)
ax2.set(xlabel="expert", ylabel="load - L (tokens)", title=f"Load minus capacity (L = {L})")
ax2.legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The certificate
#
# `lfb.certify` checks any (assignment, bias) pair against the LP optimality conditions:
# primal feasibility, integrality, complementary slackness (every token's experts are a
# top-$K$ set of $s + p$) and the duality gap $D(p) - s\cdot x$, which is zero iff all hold
# (the habit of cvxpy's solver tests: check the primal *and* the dual). The exact solution
# passes; plain top-$K$ fails feasibility; the exact assignment with a wrong bias fails
# slackness and leaves a positive gap.

# %%
good = lfb.certify(scores, K, opt.assignment, opt.bias)
print(
    f"exact assignment + p*: ok={good.ok}, gap={good.duality_gap:.1e}, "
    f"max slackness violation={good.max_slackness_violation:.1e}"
)

x_plain = np.zeros((N, E), dtype=np.int8)
np.put_along_axis(x_plain, plain.experts, 1, axis=1)
bad1 = lfb.certify(scores, K, x_plain, np.zeros(E))
print(f"plain top-K + bias 0: ok={bad1.ok}; problems: {list(bad1.problems)}")

bad2 = lfb.certify(scores, K, opt.assignment, np.zeros(E))
print(
    f"exact assignment + bias 0: ok={bad2.ok}, gap={bad2.duality_gap:.4f}; "
    f"problems: {list(bad2.problems)}"
)

# %% [markdown]
# **What to take away.** On this batch the optimal dual prices of the capacity constraint are a
# routing bias that balances top-$K$ up to the tied tokens; the dual $D$ is minimised there
# with value equal to the LP optimum; its subgradient is the load error that the Loss-Free
# update reads. The online question — how well a bias updated from *past* batches tracks these
# prices — is notebook 02 (regret, following the online-convex-optimisation view of
# arXiv 2512.03915, Han & Zhong).
