"""Bad input fails early with a message naming the argument and the allowed range."""

import numpy as np
import pytest

import lfbtheory as lfb

S = np.random.default_rng(0).random((8, 4))


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: lfb.route(S[0], 2), ValueError, r"scores must be 2-D"),
        (lambda: lfb.route(np.zeros((0, 4)), 2), ValueError, r"n >= 1"),
        (lambda: lfb.route(S, 0), ValueError, r"k must be in \[1, E=4\]"),
        (lambda: lfb.route(S, 5), ValueError, r"k must be in \[1, E=4\]"),
        (lambda: lfb.route(S, 2.0), TypeError, r"k must be an integer"),
        (lambda: lfb.route(np.where(S > 0.5, np.nan, S), 2), ValueError, r"scores must be finite"),
        (lambda: lfb.route(np.where(S > 0.5, np.inf, S), 2), ValueError, r"scores must be finite"),
        (lambda: lfb.route(S, 2, np.zeros(3)), ValueError, r"bias must have shape \(E,\)"),
        (
            lambda: lfb.route(S, 2, np.array([1, 1, 0, 1.0]), bias_mode="multiplicative"),
            ValueError,
            r"bias must be > 0",
        ),
        (lambda: lfb.route(S, 2, bias_mode="mult"), ValueError, r"bias_mode must be one of"),
        (
            lambda: lfb.route(S, 2, n_groups=3, topk_groups=1),
            ValueError,
            r"n_groups must divide E=4",
        ),
        (
            lambda: lfb.route(S, 2, n_groups=2, topk_groups=3),
            ValueError,
            r"topk_groups must be in \[1, n_groups=2\]",
        ),
        (
            lambda: lfb.route(S, 3, n_groups=2, topk_groups=1),
            ValueError,
            r"k=3 exceeds the 2 experts",
        ),
        (lambda: lfb.route(S, 2, n_groups=2), ValueError, r"given together"),
        (lambda: lfb.route(S - 2.0, 2), ValueError, r"normalize=True needs a positive, finite sum"),
        (lambda: lfb.route("abc", 2), TypeError, r"scores must be a 2-D array"),
        (lambda: lfb.solve_balanced(S[:7], 2), ValueError, r"n\*k divisible by E"),
        (
            lambda: lfb.solve_balanced(S, 2, capacity=3),
            ValueError,
            r"capacity must be an integer >= ceil\(n\*k/E\) = 4",
        ),
        (lambda: lfb.solve_balanced(S, 2, capacity=4.5), TypeError, r"capacity must be an integer"),
        (lambda: lfb.solve_balanced(S, 2, method="gurobi"), ValueError, r"method must be one of"),
        (lambda: lfb.dual_objective(S, k=2, bias=np.zeros(5)), ValueError, r"bias must have shape"),
        (
            lambda: lfb.certify(S, 2, np.zeros((8, 3)), np.zeros(4)),
            ValueError,
            r"assignment must have shape",
        ),
        (lambda: lfb.maxvio(np.zeros(4)), ValueError, r"positive total"),
        (
            lambda: lfb.expert_loads(np.array([[5]]), 4),
            ValueError,
            r"experts must lie in \[0, n_experts=4\)",
        ),
    ],
)
def test_bad_input_raises_a_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
