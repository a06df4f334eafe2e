"""Named configurations of deployed routers, for ``lfb regret --preset NAME``.

``deepseek_v3``: DeepSeek-V3's MoE layer (arXiv 2412.19437, Sec. 2.1.2 and 4.2): E = 256
routed experts, k = 8 per token, sigmoid gate, node-limited routing over 8 groups of 32 experts
with the top 4 groups eligible (groups scored by the sum of their 2 largest biased scores),
and the auxiliary-loss-free bias updated by the sign rule with u = 1e-3 (the published
constant; DeepSeek-V3 sets it to 0 for the last 500B tokens, the "deepseek_v3" schedule). The
batch size n = 4096 tokens a step is this package's choice of one micro-batch's worth of
tokens at one MoE layer (the paper's global batch is far larger); n k / E = 128 tokens per
expert. Devices: 8, one group each (the paper's 8-node expert parallelism, arXiv 2412.19437
Sec. 3.2), contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["PRESETS", "Preset", "deepseek_v3", "preset"]


@dataclass(frozen=True)
class Preset:
    """A deployed configuration: the regret experiment's fields plus its routing and devices.

    ``regret_fields`` are keyword arguments of ``lfbtheory.experiments.regret.RegretConfig``;
    ``routing`` the keyword arguments of :func:`lfbtheory.route` / ``simulate`` for the
    group restriction; ``n_devices`` the expert-parallel devices (contiguous placement);
    ``runs``: (label, rule, schedule) of the runs, the published rule first."""

    name: str
    n: int
    n_experts: int
    k: int
    gate: str
    n_groups: int
    topk_groups: int
    group_score_topk: int
    n_devices: int
    runs: tuple[tuple[str, str, str], ...]
    capacity_factors: tuple[float, ...] = (1.0, 1.25)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def regret_fields(self) -> dict[str, Any]:
        return {"n": self.n, "n_experts": self.n_experts, "k": self.k,
                "workload_options": {"gate": self.gate}}  # fmt: skip

    @property
    def routing(self) -> dict[str, int]:
        return {"n_groups": self.n_groups, "topk_groups": self.topk_groups,
                "group_score_topk": self.group_score_topk}  # fmt: skip


def deepseek_v3() -> Preset:
    """The DeepSeek-V3 configuration (module docstring)."""
    return Preset(
        name="deepseek-v3",
        n=4096,
        n_experts=256,
        k=8,
        gate="sigmoid",
        n_groups=8,
        topk_groups=4,
        group_score_topk=2,
        n_devices=8,
        runs=(
            ("sign u=1e-3 (published)", "sign", "published"),
            ("sign DeepSeek-V3 schedule", "sign", "deepseek_v3"),
        ),
        notes={"n": "tokens per step at one layer: this package's choice, not the paper's"},
    )


PRESETS = {"deepseek-v3": deepseek_v3}


def preset(name: str) -> Preset:
    """The preset ``name`` (a key of PRESETS); ValueError listing the names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(sorted(PRESETS))}, got {name!r}")
    return PRESETS[name]()
