"""The causality checker: does any token's routing depend on tokens that come after it?

A router is *causal* if the selection of token j of batch m depends only on the scores of
tokens (m', t) with m' < m, or m' = m and t <= j. The checker runs the router twice over a
stream -- once as given, once with the scores of every token after a cut (m, j) replaced
(later tokens of the same batch and all later batches) -- and reports whether any routing at
or before the cut changed, where first, and the fraction of those tokens affected.

Hypothesis drives the search (``hypothesis.find``, derandomised, no database) and shrinks a leak
to a minimal counterexample (fewest batches and tokens, smallest score values), which
:class:`CausalityReport` prints. Routing with a bias from past batches only (Loss-Free
Balancing) is causal; Expert Choice, BASE, Sinkhorn and a bias fitted on the current batch are
not (arXiv 2408.15664 Sec. 3 and App. D).

:func:`expert_choice_leakage` gives the information Expert Choice can leak per token: with T
tokens, E experts and each expert taking KT/E of them there are C(T, KT/E)^E routings of a
batch, i.e. (E/T) log2 C(T, KT/E) bits per token and layer, and this is >= K log2((1-R)/R)
with R = K/E (arXiv 2408.15664 App. D), because C(T, m) >= (T/m)^m >= ((T-m)/m)^m.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lfbtheory.routers import Router, selection_mask
from lfbtheory.validation import as_positive_int

__all__ = [
    "Counterexample",
    "CausalityReport",
    "LeakageBound",
    "check_causality",
    "perturbation_effect",
    "run_stream",
    "expert_choice_leakage",
]


def run_stream(
    router: Router, batches: Sequence[NDArray[np.float64]], n_experts: int, state: Any = None
) -> list[NDArray[np.bool_]]:
    """Run ``router`` over ``batches`` from ``state`` (None = fresh): (n, E) bool masks."""
    out = []
    for batch in batches:
        sel, state = router(np.array(batch, dtype=np.float64), state)
        mask = selection_mask(sel, n_experts)
        if mask.shape[0] != batch.shape[0]:
            raise ValueError(
                f"router returned a selection for {mask.shape[0]} tokens, "
                f"batch has {batch.shape[0]}"
            )
        out.append(mask)
    return out


def _apply_perturbation(
    batches: Sequence[NDArray[np.float64]],
    replacement: Sequence[NDArray[np.float64]],
    cut: tuple[int, int],
) -> list[NDArray[np.float64]]:
    """Copy of ``batches``, every token after ``cut`` = (batch, position) from ``replacement``."""
    b, j = cut
    out = []
    for m, (x, y) in enumerate(zip(batches, replacement, strict=True)):
        z = np.array(x, dtype=np.float64)
        if m == b:
            z[j + 1 :] = y[j + 1 :]
        elif m > b:
            z = np.array(y, dtype=np.float64)
        out.append(z)
    return out


def perturbation_effect(
    router: Router,
    batches: Sequence[NDArray[np.float64]],
    perturbed: Sequence[NDArray[np.float64]],
    cut: tuple[int, int],
    n_experts: int,
) -> tuple[NDArray[np.bool_], tuple[int, int] | None]:
    """Which tokens at or before ``cut`` change their routing when the stream is ``perturbed``.

    Returns (changed, first): ``changed`` a bool vector over the prefix tokens in stream order
    (batches before the cut, then tokens 0..j of the cut batch); ``first`` the (batch, token)
    of the first change, or None.
    """
    b, j = cut
    a = run_stream(router, batches, n_experts)
    c = run_stream(router, perturbed, n_experts)
    changed, first = [], None
    for m in range(b + 1):
        upto = a[m].shape[0] if m < b else j + 1
        diff = np.any(a[m][:upto] != c[m][:upto], axis=1)
        if first is None and diff.any():
            first = (m, int(np.argmax(diff)))
        changed.append(diff)
    return np.concatenate(changed), first


@dataclass(frozen=True)
class Counterexample:
    """A leak: routing at or before ``cut`` differs between ``batches`` and ``perturbed``,
    which agree on every token at or before the cut."""

    batches: tuple[NDArray[np.float64], ...]
    perturbed: tuple[NDArray[np.float64], ...]
    cut: tuple[int, int]
    first_changed: tuple[int, int]
    before: NDArray[np.bool_]
    after: NDArray[np.bool_]
    affected_fraction: float

    def __str__(self) -> str:
        b, j = self.cut
        m, t = self.first_changed
        np_opts: dict[str, Any] = {"precision": 4, "suppress_small": True, "max_line_width": 100}
        lines = [
            f"minimal counterexample: {len(self.batches)} batch(es) of "
            f"{self.batches[0].shape[0]} tokens x {self.batches[0].shape[1]} experts; "
            f"cut after token {j} of batch {b}"
        ]
        for i, (x, y) in enumerate(zip(self.batches, self.perturbed, strict=True)):
            lines.append(f"  batch {i} scores:\n" + _indent(np.array2string(x, **np_opts)))
            if not np.array_equal(x, y):
                lines.append(
                    f"  batch {i} perturbed (tokens after the cut):\n"
                    + _indent(np.array2string(y, **np_opts))
                )
        lines.append(
            f"  token {t} of batch {m} (at/before the cut) changed experts "
            f"{_ids(self.before)} -> {_ids(self.after)}; "
            f"{self.affected_fraction:.0%} of the prefix tokens changed"
        )
        return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _ids(mask_row: NDArray[np.bool_]) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask_row)]


@dataclass(frozen=True)
class CausalityReport:
    """Result of :func:`check_causality`.

    leak: a counterexample was found. counterexample: the shrunk one (None when causal).
    mean_affected_fraction: over ``trials`` random perturbations of random batches cut in the
    middle, the mean fraction of tokens at or before the cut whose routing changed.
    examples: the search budget (Hypothesis ``max_examples``).
    """

    router: str
    leak: bool
    counterexample: Counterexample | None
    mean_affected_fraction: float
    trials: int
    trial_tokens: int
    examples: int

    @property
    def first_changed(self) -> tuple[int, int] | None:
        return None if self.counterexample is None else self.counterexample.first_changed

    def __str__(self) -> str:
        head = f"causality of {self.router}: " + (
            "LEAK -- routing at or before a token depends on later tokens"
            if self.leak
            else f"no leak found in {self.examples} Hypothesis examples"
        )
        tail = (
            f"random perturbations of the tokens after the middle of {self.trials} batches of "
            f"{self.trial_tokens} tokens changed {self.mean_affected_fraction:.1%} of the "
            "earlier tokens' routing on average"
        )
        body = [head]
        if self.counterexample is not None:
            body.append(str(self.counterexample))
        body.append(tail)
        return "\n".join(body)


def _stream_strategy(n_experts: int, max_tokens: int, max_batches: int, levels: int) -> Any:
    from hypothesis import strategies as st

    @st.composite
    def build(draw: st.DrawFn) -> tuple[Any, ...]:
        nb = draw(st.integers(1, max_batches))
        n = draw(st.integers(2, max_tokens))
        b = draw(st.integers(0, nb - 1))
        j = draw(st.integers(0, n - 2 if b == nb - 1 else n - 1))
        size = nb * n * n_experts
        # Strictly positive gate scores on the grid {1..levels}/levels; flat integer lists draw
        # and shrink much faster than hypothesis.extra.numpy arrays.
        cells = st.lists(st.integers(1, levels), min_size=size, max_size=size)
        x = np.array(draw(cells), dtype=np.float64).reshape(nb, n, n_experts) / levels
        y = np.array(draw(cells), dtype=np.float64).reshape(nb, n, n_experts) / levels
        return tuple(x), tuple(y), (b, j)

    return build()


def check_causality(
    router: Router,
    n_experts: int,
    *,
    max_tokens: int = 4,
    max_batches: int = 2,
    max_examples: int = 200,
    levels: int = 8,
    trials: int = 20,
    trial_tokens: int = 32,
    seed: int = 0,
    name: str | None = None,
) -> CausalityReport:
    """Search for a future-token leak in ``router`` and shrink it to a minimal counterexample.

    Hypothesis draws streams of up to ``max_batches`` batches of 2..``max_tokens`` tokens with
    scores on the grid {1, ..., levels}/levels, a cut (batch, position) and replacement scores
    for every token after the cut; a leak is any change of routing at or before the cut.
    The search is derandomised (same answer every run) and uses no example database.
    Independently, ``trials`` seeded random perturbations (batches of ``trial_tokens``
    sigmoid-of-normal scores, cut in the middle, next batch resampled) estimate the fraction of
    earlier tokens affected.
    """
    from hypothesis import HealthCheck, find, settings
    from hypothesis.errors import NoSuchExample

    n_experts = as_positive_int(n_experts, "n_experts")
    for value, arg in (
        (max_tokens, "max_tokens"),
        (max_batches, "max_batches"),
        (max_examples, "max_examples"),
        (levels, "levels"),
        (trial_tokens, "trial_tokens"),
    ):
        as_positive_int(value, arg)
    if max_tokens < 2:
        raise ValueError(f"max_tokens must be >= 2 (a token and a later one), got {max_tokens}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 0:
        raise ValueError(f"trials must be an integer >= 0, got {trials!r}")

    def leaks(example: tuple[Any, ...]) -> bool:
        x, y, cut = example
        pert = _apply_perturbation(x, y, cut)
        changed, _ = perturbation_effect(router, x, pert, cut, n_experts)
        return bool(changed.any())

    cfg = settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    try:
        found = find(
            _stream_strategy(n_experts, max_tokens, max_batches, levels), leaks, settings=cfg
        )
    except NoSuchExample:
        found = None

    cex = None
    if found is not None:
        x, y, cut = found
        pert = _apply_perturbation(x, y, cut)
        changed, first = perturbation_effect(router, x, pert, cut, n_experts)
        assert first is not None  # found satisfied `leaks`
        a = run_stream(router, x, n_experts)[first[0]][first[1]]
        c = run_stream(router, pert, n_experts)[first[0]][first[1]]
        cex = Counterexample(
            tuple(np.array(v) for v in x), tuple(pert), cut, first, a, c, float(changed.mean())
        )

    rng = np.random.default_rng(seed)
    fractions = []
    for _ in range(trials):
        base = [1.0 / (1.0 + np.exp(-rng.normal(size=(trial_tokens, n_experts)))) for _ in range(2)]
        repl = [1.0 / (1.0 + np.exp(-rng.normal(size=(trial_tokens, n_experts)))) for _ in range(2)]
        cut = (0, trial_tokens // 2 - 1)
        changed, _ = perturbation_effect(
            router, base, _apply_perturbation(base, repl, cut), cut, n_experts
        )
        fractions.append(float(changed.mean()))
    return CausalityReport(
        router=name or _describe(router),
        leak=cex is not None,
        counterexample=cex,
        mean_affected_fraction=float(np.mean(fractions)) if fractions else 0.0,
        trials=trials,
        trial_tokens=trial_tokens,
        examples=max_examples,
    )


def _describe(router: Any) -> str:
    return getattr(router, "__name__", None) or type(router).__name__


@dataclass(frozen=True)
class LeakageBound:
    """Expert Choice leakage in bits per token per layer (arXiv 2408.15664 App. D).

    exact = (E/T) log2 C(T, KT/E); lower = K log2((1-R)/R), R = K/E, the App. D bound;
    lower_strong = K log2(1/R) >= lower (from C(T, m) >= (T/m)^m; both <= exact for every T);
    asymptote = E H2(R), the T -> infinity limit of exact (H2 the binary entropy).
    """

    tokens: int
    n_experts: int
    k: int
    exact: float
    lower: float
    asymptote: float
    lower_strong: float = float("nan")


def expert_choice_leakage(tokens: int, n_experts: int, k: int) -> LeakageBound:
    """Bits per token that Expert Choice routing can leak from a batch of ``tokens`` tokens.

    Each of E experts picks KT/E of the T tokens, so the routing takes one of C(T, KT/E)^E
    values: exact = (1/T) log2 C(T, KT/E)^E, computed with math.lgamma (no overflow). Since
    C(T, m) >= ((T - m)/m)^m, exact >= K log2((1 - R)/R), R = K/E (arXiv 2408.15664 App. D).
    Needs K < E (R < 1) and KT/E an integer.
    """
    t = as_positive_int(tokens, "tokens")
    e = as_positive_int(n_experts, "n_experts")
    k = as_positive_int(k, "k")
    if k >= e:
        raise ValueError(f"k must be in [1, E-1] = [1, {e - 1}] (R = K/E < 1), got {k}")
    if (k * t) % e:
        raise ValueError(f"tokens*k must be divisible by E: tokens={t}, k={k}, E={e}")
    m = k * t // e
    log_comb = math.lgamma(t + 1) - math.lgamma(m + 1) - math.lgamma(t - m + 1)
    exact = e * log_comb / math.log(2) / t
    r = k / e
    lower = k * math.log2((1 - r) / r)
    asymptote = e * (-r * math.log2(r) - (1 - r) * math.log2(1 - r))
    return LeakageBound(t, e, k, exact, lower, asymptote, k * math.log2(1 / r))
