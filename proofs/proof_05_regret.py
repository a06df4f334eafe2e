"""Lemma 5: regret of online dual subgradient descent: constant, c/sqrt(t) and 1/(mu t) steps.

Claim. Let f_1, f_2, ... be convex on R^E (here f_t = D_t, the dual of batch t), p_{t+1} = p_t -
eta_t g_t with g_t a subgradient of f_t at p_t, ||g_t|| <= G, any comparator p*,
a_t = ||p_t - p*||^2, r_t = f_t(p_t) - f_t(p*) and R_T = r_1 + ... + r_T (the sequence S(T)).
(a) one step: r_t <= (a_t - a_{t+1})/(2 eta_t) + eta_t ||g_t||^2 / 2, for every E (the inner
    product identity is the sum over coordinates of a scalar identity);
(b) constant eta, a_1 <= R^2: R_T <= R^2/(2 eta) + eta G^2 T/2; the bound is at least
    R G sqrt(T), with equality at eta* = R/(G sqrt T); for eta fixed independently of T it
    grows linearly, and the regret really is linear: on the batch n = E = 2, k = 1, s = 0 the
    proportional rule with constant u has R_T = 2u floor(T/2) exactly (checked on the package);
(c) eta_t = c/sqrt(t), a_t <= R^2 for every t <= T+1:
    R_T <= R^2 sqrt(T)/(2c) + (c G^2/2)(2 sqrt(T) - 1) <= (R^2/(2c) + c G^2) sqrt(T), and the
    last form is at least sqrt(2) R G sqrt(T) (equality at c = R/(sqrt(2) G));
(d) if every f_t is mu-strongly convex (on a set containing the iterates and p*) and
    eta_t = 1/(mu t): R_T <= (G^2/(2 mu))(1 + ln T);
(e) sum_{t<=T} 1/t <= 1 + ln T and sum_{t<=T} 1/sqrt(t) <= 2 sqrt(T) - 1 for every T >= 1;
(f) G: for the dual of a batch, g = load - L with 0 <= load_i <= n and sum load = nk, so
    ||load - L||^2 <= n^2 k (1 - k/E) for every E, with equality when k experts take every
    token; for the proportional rule (a step u on D/L, i.e. eta = u/L on D) the normalised
    subgradient g/L has ||g/L||^2 <= E (E - k)/k.
Every part is a chain of certified steps ending in the stated bound (``lfb prove`` prints the
hypotheses each rests on); the sums are proved for every T by induction.

The lemma does NOT apply to the sign rule: by Lemma 3 that rule is a per-expert step u/|g_i|,
so -sign(g) is not a subgradient direction of D (Lemma 12 treats it). (d)'s hypothesis fails
for a single batch's dual, which is piecewise linear (Lemma 6 (f)); it holds for the expected
dual only, and only locally (Lemmas 6 and 14), so (d) bounds expected regret on the region
where the iterates stay, and needs the step constant 1/mu to match the modulus (Lemma 14).

Hypotheses (named in the chains; their status is printed by ``lfb prove``). update:
p_{t+1} - p* = (p_t - p*) - eta_t g_t, coordinate by coordinate (the algorithm);
subgradient: r_t <= g_t.(p_t - p*) (convexity, Lemma 2); strongly-convex:
r_t <= g_t.(p_t - p*) - mu a_t/2; gradient: ||g_t||^2 <= G^2; constant: eta_t = eta;
start: a_1 <= R^2; schedule-sqrt: eta_t = c/sqrt(t); radius: a_t <= R^2 for every t <= T+1;
schedule-inv: eta_t = 1/(mu t); cap: load_i <= n (an expert takes each token at most once);
total: sum_i load_i = nk.
Source. Zinkevich, ICML 2003 (Thm 1); Hazan, Introduction to Online Convex Optimization,
Thm 3.1 and 3.3; arXiv 2512.03915 states logarithmic expected regret for ALF-LB (its theorem
bodies are not reproduced or checked here; (d) is our statement of the standard result).

Proof. (a) per coordinate, x g = (x^2 - (x - eta g)^2)/(2 eta) + eta g^2/2; sum over the
coordinates and use the subgradient inequality. (b)-(d) induction on T: the statement at T + 1
is the statement at T plus one step (a), and the distance terms telescope; in (c) the extra
term (R^2 - a_{T+1})(sqrt(T+1) - sqrt T)/(2c) is >= 0 by the radius hypothesis; in (d) the
distance terms cancel exactly and leave -mu T a_{T+1}/2 <= 0. (e) induction with increments
ln(T+1) - ln T - 1/(T+1) >= 0 (ln(1 + x) >= x/(1 + x) for x > 0: zero at 0, derivative
x/(1 + x)^2 >= 0) and 2 sqrt(T+1) - 2 sqrt(T) - 1/sqrt(T+1) = 1/(b (a + b)^2) with
a = sqrt T, b = sqrt(T+1). (f) per coordinate c (n - c) >= 0; summed, n sum c - sum c^2 >= 0,
and ||c - L||^2 = sum c^2 - 2 L sum c + E L^2 on sum c = nk.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from _certify import Lemma, assumed, checked, cited

from lfbtheory import dual_objective, route
from lfbtheory.online import schedules as S
from lfbtheory.online import updates as U

# Symbols of the bounds (exported for tests/test_proof_bounds.py, which lambdifies them).
R, G, c, mu, eta = sp.symbols("R G c mu eta", positive=True)
T = sp.Symbol("T", positive=True, integer=True)
n_, k_, E_ = sp.symbols("n k E", positive=True)


def bound_constant() -> sp.Expr:
    """(b): R^2/(2 eta) + eta G^2 T / 2 (R >= ||p_1 - p*||)."""
    return R**2 / (2 * eta) + eta * G**2 * T / 2


def bound_inverse_sqrt() -> sp.Expr:
    """(c): R^2 sqrt(T)/(2c) + (c G^2/2)(2 sqrt(T) - 1) for eta_t = c/sqrt(t)."""
    return R**2 * sp.sqrt(T) / (2 * c) + c * G**2 * (2 * sp.sqrt(T) - 1) / 2


def bound_strongly_convex() -> sp.Expr:
    """(d): (G^2/(2 mu))(1 + ln T) for eta_t = 1/(mu t)."""
    return G**2 / (2 * mu) * (1 + sp.log(T))


def gradient_norm_sq_bound() -> sp.Expr:
    """(f): max ||load - L||^2 = n^2 k (1 - k/E)."""
    return n_**2 * k_ * (1 - k_ / E_)


class Setting:
    """The sequences of the online loop and the coordinates of its vectors."""

    def __init__(self, lem: Lemma) -> None:
        self.t = lem.index("t", "a step of the online loop")
        lem.index(T, "the horizon")
        lem.assume(R, G, c, mu, eta, meaning="radius, gradient bound, step constants > 0")
        self.a = lem.sequence("a", "a(t) = ||p_t - p*||^2", "nonneg")
        self.eta = lem.sequence("eta", "the step eta_t > 0", "pos")
        self.g2 = lem.sequence("g2", "||g_t||^2", "nonneg")
        self.lin = lem.sequence("lin", "g_t.(p_t - p*)")
        self.r = lem.sequence("r", "r_t = f_t(p_t) - f_t(p*)")
        self.S = lem.sequence("S", "R_T = r_1 + ... + r_T")
        self.X = lem.coordinate("X", "X_i(t) = p_{t,i} - p*_i")
        self.g = lem.coordinate("g", "g_i(t), a coordinate of the subgradient g_t")
        t = self.t
        lem.sum_of(self.a, self.X(t) ** 2, t)
        lem.sum_of(self.lin, self.X(t) * self.g(t), t)
        lem.sum_of(self.g2, self.g(t) ** 2, t)
        lem.sequence_recursion("regret", self.S, t, self.r(1), self.S(t) + self.r(t + 1))


def one_step(lem: Lemma, s: Setting):
    """(a) per coordinate, summed over the coordinates, with the subgradient inequality."""
    t, X, g, e = s.t, s.X, s.g, s.eta
    lem.hypothesis(
        "update",
        X(t + 1),
        "==",
        X(t) - e(t) * g(t),
        status=assumed(
            "the algorithm p_{t+1} = p_t - eta_t g_t (Lemma 3 (a): the proportional rule)"
        ),
    )
    lem.identity(
        "(a) one coordinate",
        X(t) * g(t),
        (X(t) ** 2 - X(t + 1) ** 2) / (2 * e(t)) + e(t) * g(t) ** 2 / 2,
        subs=["update"],
    )
    onestep = lem.summed(
        "(a) summed over coordinates",
        "(a) one coordinate",
        {X(t) * g(t): s.lin(t), X(t) ** 2: s.a(t), X(t + 1) ** 2: s.a(t + 1), g(t) ** 2: s.g2(t)},
        E_,
    )
    lem.hypothesis("subgradient", s.r(t), "<=", s.lin(t), status=cited("Lemma 2 (b)"))
    rhs = (s.a(t) - s.a(t + 1)) / (2 * e(t)) + e(t) * s.g2(t) / 2
    fact = lem.certify("(a)", s.r(t), "<=", rhs, using=[(1, "subgradient"), (1, onestep)])
    lem.theorem("(a)", fact, s.r(t), "<=", rhs)
    lem.hypothesis(
        "gradient",
        s.g2(t),
        "<=",
        G**2,
        status=assumed("||g_t|| <= G (by (f) for any G^2 >= n^2 k (1 - k/E))"),
    )
    return onestep


def _sum_by_induction(
    lem: Lemma, s: Setting, tag: str, per_step: str, template, extra_first, extra_step
):
    """S(T) <= template(T) by induction from the per-step bound ``per_step`` (a fact in t):
    base from per_step at t = 1, step from the hypothesis at T and per_step at T + 1; the
    ``extra_*`` lists add facts (multiplier, name) and substitutions to each."""
    t = s.t
    lem.instance(f"{tag} step 1", per_step, {t: 1})
    lem.instance(f"{tag} step T+1", per_step, {t: T + 1})
    lem.instance(f"{tag} regret T+1", "regret [t+1]", {t: T})
    base = lem.certify(
        f"{tag} base",
        s.S(1),
        "<=",
        template.subs(T, 1),
        using=[(1, f"{tag} step 1"), *extra_first[0]],
        subs=["regret [1]", *extra_first[1]],
    )
    ih = lem.induction_hypothesis(tag, s.S(T), "<=", template, T)
    step = lem.certify(
        f"{tag} step",
        s.S(T + 1),
        "<=",
        template.subs(T, T + 1),
        using=[(1, ih), (1, f"{tag} step T+1"), *extra_step[0]],
        subs=[f"{tag} regret T+1", *extra_step[1]],
    )
    return lem.induction(tag, ih, base, step)


def constant_step(lem: Lemma, s: Setting) -> None:
    """(b): the telescoped sum, its minimum over eta, and the slope in T."""
    t, a = s.t, s.a
    lem.hypothesis("constant", s.eta(t), "==", eta, status=assumed("the schedule eta_t = eta"))
    per = lem.certify(
        "(b) per step",
        s.r(t),
        "<=",
        (a(t) - a(t + 1)) / (2 * eta) + eta * G**2 / 2,
        using=[(1, "(a)"), (eta / 2, "gradient")],
        subs=["constant"],
    )
    summed = _sum_by_induction(
        lem,
        s,
        "(b) sum",
        per.name,
        (a(1) - a(T + 1)) / (2 * eta) + eta * G**2 * T / 2,
        ([], []),
        ([], []),
    )
    lem.hypothesis("start", a(1), "<=", R**2, status=assumed("R >= ||p_1 - p*||"))
    final = lem.certify(
        "(b)",
        s.S(T),
        "<=",
        R**2 / (2 * eta) + eta * G**2 * T / 2,
        using=[(1, summed), (1 / (2 * eta), "start")],
        terms=[a(T + 1) / (2 * eta)],
    )
    lem.theorem("(b)", final, s.S(T), "<=", bound_constant)
    lower = lem.certify(
        "(b) at least R G sqrt T",
        R * G * sp.sqrt(T),
        "<=",
        R**2 / (2 * eta) + eta * G**2 * T / 2,
        terms=[(R - eta * G * sp.sqrt(T)) ** 2 / (2 * eta)],
    )
    lem.theorem("(b) at least R G sqrt T", lower, R * G * sp.sqrt(T), "<=", bound_constant)
    star = R / (G * sp.sqrt(T))
    value = lem.identity(
        "(b) value at eta*",
        (R**2 / (2 * eta) + eta * G**2 * T / 2).subs(eta, star),
        R * G * sp.sqrt(T),
    )
    lem.theorem(
        "(b) value at eta*",
        value,
        bound_constant().subs(eta, star),
        "==",
        R * G * sp.sqrt(T),
        bound=bound_constant,
    )


def linear_regret_instance(lem: Lemma, u: float = 0.125, horizon: int = 41) -> None:
    """(b) proportional rule, constant u, s = 0 (n = E = 2, k = 1): R_T = 2u floor(T/2)."""
    s = np.zeros((2, 2))
    rule = U.proportional(S.constant(u))
    st = rule.init(2, None)
    total, ok = 0.0, True
    for t in range(horizon):
        total += dual_objective(s, k=1, bias=st.bias)
        ok &= total == 2 * u * ((t + 1) // 2)
        st = rule.update(route(s, 1, st.bias, normalize=False).loads, st)
    # hindsight minimum: D_t >= LP value 0 for every p (weak duality) and D(0) = 0
    ok &= dual_objective(s, k=1, bias=np.zeros(2)) == 0.0
    fact = lem.checked(
        "(b) linear instance",
        f"proportional rule, u = {u}, s = 0 (n = E = 2, k = 1): R_T == 2u floor(T/2) for "
        f"T = 1..{horizon} on the package",
        ok,
    )
    lem.theorem_checked("(b) linear instance", fact)


def summation_bounds(lem: Lemma, s: Setting) -> tuple[sp.Function, sp.Function]:
    """(e) sum 1/t <= 1 + ln T and sum 1/sqrt t <= 2 sqrt T - 1, by induction."""
    t = s.t
    H = lem.sequence("H", "H(T) = sum_{t<=T} 1/t")
    Q = lem.sequence("Q", "Q(T) = sum_{t<=T} 1/sqrt(t)")
    lem.sequence_recursion("harmonic", H, t, sp.Integer(1), H(t) + 1 / (t + 1))
    lem.sequence_recursion("rootsum", Q, t, sp.Integer(1), Q(t) + 1 / sp.sqrt(t + 1))
    # ln(1 + x) >= x/(1 + x) for x > 0, then x = 1/T
    x = lem.var("x", "a positive real", positive=True)
    deriv = lem.certify(
        "(e) d/dx [ln(1+x) - x/(1+x)] >= 0", 0, "<=", x / (1 + x) ** 2, terms=[x / (1 + x) ** 2]
    )
    lem.monotone("(e) ln(1+x) >= x/(1+x)", sp.log(1 + x) - x / (1 + x), x, deriv)
    lem.instance("(e) at x = 1/T", "(e) ln(1+x) >= x/(1+x)", {x: 1 / T})
    inc = lem.certify(
        "(e) harmonic increment",
        0,
        "<=",
        sp.log(T + 1) - sp.log(T) - 1 / (T + 1),
        using=[(1, "(e) at x = 1/T")],
    )
    lem.instance("harmonic T+1", "harmonic [t+1]", {t: T})
    base = lem.certify("(e) harmonic base", H(1), "<=", 1 + sp.log(1), subs=["harmonic [1]"])
    ih = lem.induction_hypothesis("(e) harmonic", H(T), "<=", 1 + sp.log(T), T)
    step = lem.certify(
        "(e) harmonic step",
        H(T + 1),
        "<=",
        1 + sp.log(T + 1),
        using=[(1, ih), (1, inc)],
        subs=["harmonic T+1"],
    )
    hb = lem.induction("(e) harmonic", ih, base, step)
    lem.theorem("(e) harmonic", hb, H(T), "<=", 1 + sp.log(T))
    # 2 sqrt(T+1) - 2 sqrt T - 1/sqrt(T+1) = 1/(b (a + b)^2), a = sqrt T, b = sqrt(T + 1)
    a = lem.var("alpha", "a positive real", positive=True)
    b = sp.sqrt(a**2 + 1)
    lem.certify(
        "(e) root increment in a", 0, "<=", 2 * b - 2 * a - 1 / b, terms=[1 / (b * (a + b) ** 2)]
    )
    rinc = lem.instance("(e) root increment", "(e) root increment in a", {a: sp.sqrt(T)})
    lem.instance("rootsum T+1", "rootsum [t+1]", {t: T})
    base = lem.certify("(e) root base", Q(1), "<=", 2 * sp.sqrt(1) - 1, subs=["rootsum [1]"])
    ih = lem.induction_hypothesis("(e) roots", Q(T), "<=", 2 * sp.sqrt(T) - 1, T)
    step = lem.certify(
        "(e) root step",
        Q(T + 1),
        "<=",
        2 * sp.sqrt(T + 1) - 1,
        using=[(1, ih), (1, rinc)],
        subs=["rootsum T+1"],
    )
    qb = lem.induction("(e) roots", ih, base, step)
    lem.theorem("(e) roots", qb, Q(T), "<=", 2 * sp.sqrt(T) - 1)
    return H, Q


def inverse_sqrt_steps(lem: Lemma, s: Setting, Q) -> None:
    """(c): induction with the radius term, then (e)."""
    t, a = s.t, s.a
    lem.hypothesis(
        "schedule-sqrt",
        s.eta(t),
        "==",
        c / sp.sqrt(t),
        status=assumed("the schedule eta_t = c/sqrt(t)"),
    )
    lem.hypothesis(
        "radius",
        a(t),
        "<=",
        R**2,
        status=checked("tests/test_proof_bounds.py::test_inverse_sqrt_step_regret_below_bound"),
    )
    per = lem.certify(
        "(c) per step",
        s.r(t),
        "<=",
        (a(t) - a(t + 1)) * sp.sqrt(t) / (2 * c) + c * G**2 / (2 * sp.sqrt(t)),
        using=[(1, "(a)"), (c / (2 * sp.sqrt(t)), "gradient")],
        subs=["schedule-sqrt"],
    )
    lem.instance("(c) radius 1", "radius", {t: 1})
    lem.instance("(c) radius T+1", "radius", {t: T + 1})
    lem.instance("rootsum T+1 (c)", "rootsum [t+1]", {t: T})
    template = R**2 * sp.sqrt(T) / (2 * c) - a(T + 1) * sp.sqrt(T) / (2 * c) + c * G**2 / 2 * Q(T)
    summed = _sum_by_induction(
        lem,
        s,
        "(c) sum",
        per.name,
        template,
        ([(1 / (2 * c), "(c) radius 1")], ["rootsum [1]"]),
        (
            [(1 / (2 * c * (sp.sqrt(T + 1) + sp.sqrt(T))), "(c) radius T+1")],
            ["rootsum T+1 (c)"],
        ),
    )
    dropped = lem.certify(
        "(c) drop the last distance",
        s.S(T),
        "<=",
        R**2 * sp.sqrt(T) / (2 * c) + c * G**2 / 2 * Q(T),
        using=[(1, summed)],
        terms=[a(T + 1) * sp.sqrt(T) / (2 * c)],
    )
    final = lem.certify(
        "(c)",
        s.S(T),
        "<=",
        R**2 * sp.sqrt(T) / (2 * c) + c * G**2 * (2 * sp.sqrt(T) - 1) / 2,
        using=[(1, dropped), (c * G**2 / 2, "(e) roots")],
    )
    lem.theorem("(c)", final, s.S(T), "<=", bound_inverse_sqrt)
    simple = (R**2 / (2 * c) + c * G**2) * sp.sqrt(T)
    weaker = lem.certify(
        "(c) simple form",
        R**2 * sp.sqrt(T) / (2 * c) + c * G**2 * (2 * sp.sqrt(T) - 1) / 2,
        "<=",
        simple,
        terms=[c * G**2 / 2],
    )
    lem.theorem("(c) simple form", weaker, bound_inverse_sqrt, "<=", simple)
    lower = lem.certify(
        "(c) at least sqrt2 R G sqrt T",
        sp.sqrt(2) * R * G * sp.sqrt(T),
        "<=",
        simple,
        terms=[(R - sp.sqrt(2) * c * G) ** 2 / (2 * c) * sp.sqrt(T)],
    )
    lem.theorem(
        "(c) at least sqrt2 R G sqrt T", lower, sp.sqrt(2) * R * G * sp.sqrt(T), "<=", simple
    )


def strongly_convex_steps(lem: Lemma, s: Setting, H, onestep) -> None:
    """(d): the distance terms cancel; then (e)."""
    t, a = s.t, s.a
    lem.hypothesis(
        "strongly-convex",
        s.r(t),
        "<=",
        s.lin(t) - mu * a(t) / 2,
        status=assumed(
            "f_t mu-strongly convex on a set holding the iterates and p* (for the dual: the "
            "expected dual, locally; Lemmas 6, 14)"
        ),
    )
    lem.hypothesis(
        "schedule-inv",
        s.eta(t),
        "==",
        1 / (mu * t),
        status=assumed("the schedule eta_t = 1/(mu t)"),
    )
    per = lem.certify(
        "(d) per step",
        s.r(t),
        "<=",
        (a(t) - a(t + 1)) * mu * t / 2 - mu * a(t) / 2 + G**2 / (2 * mu * t),
        using=[(1, "strongly-convex"), (1, onestep), (1 / (2 * mu * t), "gradient")],
        subs=["schedule-inv"],
    )
    lem.instance("harmonic T+1 (d)", "harmonic [t+1]", {t: T})
    summed = _sum_by_induction(
        lem,
        s,
        "(d) sum",
        per.name,
        G**2 / (2 * mu) * H(T) - mu * T * a(T + 1) / 2,
        ([], ["harmonic [1]"]),
        ([], ["harmonic T+1 (d)"]),
    )
    dropped = lem.certify(
        "(d) drop the last distance",
        s.S(T),
        "<=",
        G**2 / (2 * mu) * H(T),
        using=[(1, summed)],
        terms=[mu * T * a(T + 1) / 2],
    )
    final = lem.certify(
        "(d)",
        s.S(T),
        "<=",
        G**2 / (2 * mu) * (1 + sp.log(T)),
        using=[(1, dropped), (G**2 / (2 * mu), "(e) harmonic")],
    )
    lem.theorem("(d)", final, s.S(T), "<=", bound_strongly_convex)


def gradient_bound(lem: Lemma) -> None:
    """(f) for every E: per coordinate c (n - c) >= 0, summed; the equality case; normalised."""
    lem.assume(n_, k_, E_, meaning="tokens, experts per token, experts")
    load = lem.coordinate("load", "load_i, a count in [0, n]", "nonneg", indexed=False)
    c1, c2, v = sp.symbols("C1 C2 V", real=True)
    cap = n_ * k_ / E_
    lem.sum_of(c1, load)
    lem.sum_of(c2, load**2)
    lem.sum_of(v, (load - cap) ** 2)
    lem.hypothesis("cap", load, "<=", n_, status=assumed("an expert takes each token at most once"))
    lem.hypothesis("total", c1, "==", n_ * k_, status=assumed("each token takes k experts"))
    lem.certify("(f) c (n - c) >= 0", 0, "<=", load * (n_ - load), using=[(load, "cap")])
    lem.summed("(f) n sum c - sum c^2 >= 0", "(f) c (n - c) >= 0", {load: c1, load**2: c2}, E_)
    lem.identity("(f) square, one coordinate", (load - cap) ** 2, load**2 - 2 * cap * load + cap**2)
    lem.summed(
        "(f) ||c - L||^2",
        "(f) square, one coordinate",
        {(load - cap) ** 2: v, load**2: c2, load: c1},
        E_,
    )
    fact = lem.certify(
        "(f)",
        v,
        "<=",
        n_**2 * k_ * (1 - k_ / E_),
        using=[(1, "(f) n sum c - sum c^2 >= 0"), (n_ - 2 * cap, "total")],
        subs=["(f) ||c - L||^2"],
    )
    lem.theorem("(f)", fact, v, "<=", gradient_norm_sq_bound)
    ok = True
    for e in range(2, 9):
        for kk in range(1, e + 1):
            tight = [n_] * kk + [0] * (e - kk)
            gap = sum((ci - n_ * kk / e) ** 2 for ci in tight) - gradient_norm_sq_bound().subs(
                {k_: kk, E_: e}
            )
            ok &= sp.simplify(gap) == 0
    eq = lem.checked(
        "(f) equality", "k experts taking every token attain n^2 k (1 - k/E), E <= 8", ok
    )
    lem.theorem_checked("(f) equality", eq)
    norm = lem.identity("(f) normalised", n_**2 * k_ * (1 - k_ / E_) / cap**2, E_ * (E_ - k_) / k_)
    lem.theorem(
        "(f) normalised",
        norm,
        gradient_norm_sq_bound() / cap**2,
        "==",
        E_ * (E_ - k_) / k_,
        bound=gradient_norm_sq_bound,
    )


def derive() -> Lemma:
    """Every chain of the lemma (symbolic; no package calls)."""
    lem = Lemma(__doc__)
    s = Setting(lem)
    onestep = one_step(lem, s)
    constant_step(lem, s)
    H, Q = summation_bounds(lem, s)
    inverse_sqrt_steps(lem, s, Q)
    strongly_convex_steps(lem, s, H, onestep)
    gradient_bound(lem)
    return lem


def main() -> Lemma:
    lem = derive()
    linear_regret_instance(lem)
    return lem


def test_claim() -> None:
    main()


if __name__ == "__main__":
    main()
    print("PASS:", __doc__.strip().splitlines()[0])
