"""The oracle of §6.1, the methods on its counts, the analytic curves and the script."""

import csv
import itertools

import numpy as np
import pytest
from scipy import stats

from multitest import oracle
from multitest._power import certify_threshold, guess_probability
from simulations import power_curves as pc


def _chisquare_p(observed, expected_prob, min_expected=5.0):
    """Chi-square goodness-of-fit p-value, pooling cells with small expectation."""
    observed = np.asarray(observed, float)
    expected = np.asarray(expected_prob, float) * observed.sum()
    order = np.argsort(expected)
    obs_p, exp_p, o, e = [], [], 0.0, 0.0
    for i in order:
        o += observed[i]
        e += expected[i]
        if e >= min_expected:
            obs_p.append(o)
            exp_p.append(e)
            o = e = 0.0
    if e > 0:
        obs_p[-1] += o
        exp_p[-1] += e
    return stats.chisquare(obs_p, exp_p).pvalue


def _mean_se(x):
    x = np.asarray(x, float)
    return x.mean(), x.std(ddof=1) / np.sqrt(x.size)


# ---------------------------------------------------------------------------
# the oracle's counts
# ---------------------------------------------------------------------------
def test_component_probabilities():
    np.testing.assert_allclose(oracle.component_probabilities(4, 2, 0.1), [0.5, 0.5, 0.9, 0.9])
    np.testing.assert_allclose(oracle.component_probabilities(2, 1, 0.3), [0.0, 0.7])


def test_sampler_is_the_per_component_binomial_model():
    """Bit for bit the same draws as plain NumPy with the same Generator."""
    N, k, gamma, n0, n = 7, 2, 0.08, 6, 40
    s = oracle.sample_oracle(N, k, gamma, n0, n, reps=3, seed=11)
    g = np.random.default_rng(11)
    q = oracle.component_probabilities(N, k, gamma)
    for r in range(3):
        for i in range(N):
            votes, x = g.binomial(n0, q[i]), g.binomial(n, q[i])
            right = 2 * votes >= n0
            assert s.right[r, i] == right
            assert s.counts[r, i] == (x if right else n - x)


def test_oracle_counts_distribution():
    """Counts of the right class ~ Bin(n, q), independent of the guess; guess ~ Bern(g)."""
    N, k, gamma, n0, n = 40_000, 20_000, 0.05, 4, 30
    s = oracle.sample_oracle(N, k, gamma, n0, n, seed=2)
    for sl, q in ((slice(0, k), 0.75), (slice(k, N), 0.95)):
        right, cnt = s.right[0, sl], s.counts[0, sl]
        x = np.where(right, cnt, n - cnt)
        # mean and variance within 5 standard errors of Bin(n, q)'s
        m = x.size
        assert abs(x.mean() - n * q) < 5 * np.sqrt(n * q * (1 - q) / m)
        var, kurt = (float(v) for v in stats.binom.stats(n, q, moments="vk"))
        assert abs(x.var(ddof=1) - var) < 5 * var * np.sqrt(2 / (m - 1) + kurt / m)
        assert _chisquare_p(np.bincount(x, minlength=n + 1),
                            stats.binom.pmf(np.arange(n + 1), n, q)) > 1e-3
        g = guess_probability(q, n0)
        assert abs(right.mean() - g) < 5 * np.sqrt(g * (1 - g) / m)
        # independence of guess and count (contingency table, pooled tails)
        bins = np.digitize(x, np.unique(np.quantile(x, [0.2, 0.4, 0.6, 0.8])))
        table = np.array([np.bincount(bins[right == v], minlength=5) for v in (True, False)])
        table = table[:, table.sum(axis=0) > 0]
        assert stats.chi2_contingency(table).pvalue > 1e-3


def test_seeding_and_chaining():
    a = oracle.sample_oracle(50, 1, 0.05, 10, 20, reps=4, seed=3)
    b = oracle.sample_oracle(50, 1, 0.05, 10, 20, reps=4, seed=np.random.SeedSequence(3))
    assert np.array_equal(a.counts, b.counts) and np.array_equal(a.right, b.right)
    g = np.random.default_rng(3)
    rows = [oracle.sample_oracle(50, 1, 0.05, 10, 20, seed=g).counts[0] for _ in range(4)]
    assert np.array_equal(np.stack(rows), a.counts)
    c = oracle.sample_oracle(50, 1, 0.05, 10, 20, reps=4, seed=4)
    assert not np.array_equal(a.counts, c.counts)


@pytest.mark.parametrize("kwargs, err, match", [
    ({"N": 0}, ValueError, "`N`"),
    ({"k": 5}, ValueError, "`k`"),
    ({"gamma": 1.5}, ValueError, "`gamma`"),
    ({"n0": 0}, ValueError, "`n0`"),
    ({"n": 2.0}, TypeError, "`n`"),
    ({"reps": 0}, ValueError, "`reps`"),
    ({"seed": "x"}, TypeError, "`seed`"),
])
def test_sampler_validation(kwargs, err, match):
    args = {"N": 4, "k": 1, "gamma": 0.1, "n0": 5, "n": 5, "reps": 1, "seed": 0} | kwargs
    with pytest.raises(err, match=match):
        oracle.sample_oracle(args.pop("N"), args.pop("k"), args.pop("gamma"), args.pop("n0"),
                             args.pop("n"), **args)


# ---------------------------------------------------------------------------
# methods against exact enumeration on tiny cases (N = 2 or 3, n0 = n = 5)
# ---------------------------------------------------------------------------
N2, K, GAMMA, N0, NS, TAU, ALPHA = 2, 1, 0.1, 5, 5, 0.5, 0.2
REPS = 20_000


def _component_states(q):
    """[(prob, right, count)] of one component: guess from N0 votes, count out of NS."""
    g = stats.binom.sf((N0 + 1) // 2 - 1, N0, q)
    out = []
    for c in range(NS + 1):
        out.append((g * stats.binom.pmf(c, NS, q), True, c))
        out.append(((1 - g) * stats.binom.pmf(c, NS, 1 - q), False, c))
    return out


def _holm_ref(p, alpha, k=1):
    """Textbook Lehmann–Romano step-down (k = 1: Holm), written from the definition."""
    N = len(p)
    order = np.argsort(p, kind="stable")
    rej = np.zeros(N, bool)
    for j, i in enumerate(order, start=1):
        crit = k * alpha / N if j <= k else k * alpha / (N + k - j)
        if p[i] > crit:
            break
        rej[i] = True
    return rej


def _exact_outcomes(decide):
    """Exact distribution of (#certified, #certified-right) over N2 components."""
    q = oracle.component_probabilities(N2, K, GAMMA)
    dist = {}
    for states in itertools.product(*(_component_states(qi) for qi in q)):
        prob = np.prod([s[0] for s in states])
        right = np.array([s[1] for s in states])
        counts = np.array([s[2] for s in states])
        rej = decide(counts)
        key = (int(rej.sum()), int((rej & right).sum()))
        dist[key] = dist.get(key, 0.0) + prob
    return dist


def _compare(dist, cert, right):
    """(observations outside the exact support, chi-square p-value of the rest)."""
    keys = sorted(dist)
    obs = [np.sum((np.round(cert * N2) == a) & (np.round(right * N2) == b)) for a, b in keys]
    return cert.size - sum(obs), _chisquare_p(obs, [dist[kk] for kk in keys])


@pytest.fixture(scope="module")
def tiny_sample():
    return oracle.sample_oracle(N2, K, GAMMA, N0, NS, reps=REPS, seed=5)


@pytest.mark.parametrize("correction, budget", [("bonferroni", 0), ("holm", 0), ("kfwer", 1)])
def test_segcertify_against_enumeration(tiny_sample, correction, budget):
    def decide(counts):
        p = stats.binom.sf(counts - 1, NS, TAU)
        if correction == "bonferroni":
            return p <= ALPHA / N2
        return _holm_ref(p, ALPHA, k=budget + 1)

    rates = oracle.segcertify_rates(tiny_sample, TAU, ALPHA, correction=correction,
                                    budget=budget)
    outside, pvalue = _compare(_exact_outcomes(decide), rates.certified, rates.certified_right)
    assert outside == 0  # no outcome outside the exact support
    assert pvalue > 1e-3


def test_indivclass_against_enumeration(tiny_sample):
    t = certify_threshold(NS, ALPHA / N2)

    def decide(counts):
        lower = np.where(counts == 0, 0, stats.beta.ppf(ALPHA / N2, np.maximum(counts, 1),
                                                        NS - counts + 1))
        return np.full(N2, bool((lower > 0.5).all()))

    rates = oracle.indivclass_rates(tiny_sample, ALPHA)
    assert t <= NS  # the case is not degenerate
    outside, pvalue = _compare(_exact_outcomes(decide), rates.certified, rates.certified_right)
    assert outside == 0  # no outcome outside the exact support
    assert pvalue > 1e-3


def _joint_exact(N, k, gamma, n0, n, alpha):
    """Exact law of (certified, #wrong) of JOINTCLASS by enumerating the n0 votes."""
    q = oracle.component_probabilities(N, k, gamma)
    labels = list(itertools.product((0, 1), repeat=N))  # 1 = wrong, component 0..k-1 bad
    pi = np.array([np.prod([q[i] if y == 0 else 1 - q[i] for i, y in enumerate(lab)])
                   for lab in labels])
    # the documented index: (#wrong, #wrong bad, lexicographic)
    index = sorted(range(len(labels)), key=lambda j: (sum(labels[j]), sum(labels[j][:k]),
                                                       labels[j]))
    rank = {j: r for r, j in enumerate(index)}
    t = certify_threshold(n, alpha)
    dist = {}
    L = len(labels)
    for comp in itertools.product(range(n0 + 1), repeat=L):
        if sum(comp) != n0:
            continue
        prob = stats.multinomial.pmf(comp, n0, pi)
        top = max(comp)
        guess = min((j for j in range(L) if comp[j] == top), key=rank.get)
        p_cert = stats.binom.sf(t - 1, n, pi[guess])
        w = sum(labels[guess])
        dist[(True, w)] = dist.get((True, w), 0.0) + prob * p_cert
        dist[(False, w)] = dist.get((False, w), 0.0) + prob * (1 - p_cert)
    return dist


@pytest.mark.parametrize("N, k, gamma, n0, n, alpha", [
    (2, 1, 0.1, 5, 5, 0.2),
    (3, 1, 0.08, 4, 5, 0.2),  # two labels share a (w_good, w_bad) class: the urn
    (3, 0, 0.3, 3, 6, 0.3),  # n0 odd, many ties among wrong labels
])
def test_jointclass_against_enumeration(N, k, gamma, n0, n, alpha):
    dist = _joint_exact(N, k, gamma, n0, n, alpha)
    res = oracle.jointclass_trials(N, k, gamma, n0, n, alpha, reps=REPS, seed=6)
    keys = sorted(kk for kk, v in dist.items() if v > 0)
    obs = [np.sum((res.certified == a) & (res.n_wrong == w)) for a, w in keys]
    assert sum(obs) == REPS
    assert _chisquare_p(obs, [dist[kk] for kk in keys]) > 1e-3


def test_jointclass_large_N_is_cheap_and_sane():
    res = oracle.jointclass_trials(10**6, 1, 0.05, 1000, 1000, 0.001, reps=3, seed=0)
    assert not res.certified.any()  # P(all-right label) = 0.95**1e6: a random guess
    assert np.all(np.abs(res.n_wrong - 0.05 * 10**6) < 2000)
    res = oracle.jointclass_trials(10**6, 0, 1e-8, 100, 100, 0.001, reps=3, seed=0)
    assert res.certified.all() and (res.n_wrong == 0).all()


def test_positive_binomial_urn_large_k():
    """The urn: with K = C(N, 1) = N small, labels with one wrong component repeat."""
    res = oracle.jointclass_trials(2, 0, 0.45, 9, 9, 0.2, reps=4000, seed=1)
    dist = _joint_exact(2, 0, 0.45, 9, 9, 0.2)
    keys = sorted(kk for kk, v in dist.items() if v > 0)
    obs = [np.sum((res.certified == a) & (res.n_wrong == w)) for a, w in keys]
    assert _chisquare_p(obs, [dist[kk] for kk in keys]) > 1e-3


# ---------------------------------------------------------------------------
# Monte Carlo against the exact curves
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("N, k, gamma, n0, n, alpha, tau, reps", [
    (100, 1, 0.03, 100, 100, 0.001, 0.75, 400),
    (100, 1, 0.07, 100, 100, 0.001, 0.75, 400),
    (100, 1, 0.19, 1000, 1000, 0.001, 0.75, 200),  # bad component certified wrong
    (10**4, 0, 0.05, 1000, 1000, 0.1, 0.9, 20),
    (50, 3, 0.2, 3, 40, 0.05, 0.6, 400),  # wrong guesses matter here
])
def test_segcertify_bonferroni_matches_analytic(N, k, gamma, n0, n, alpha, tau, reps):
    s = oracle.sample_oracle(N, k, gamma, n0, n, reps=reps, seed=7)
    r = oracle.segcertify_rates(s, tau, alpha, correction="bonferroni")
    exact = oracle.analytic_segcertify_bonferroni(N, k, gamma, n0, n, alpha, tau)
    for mc, ex in ((r.certified, exact.certified), (r.certified_right, exact.certified_right)):
        m, se = _mean_se(mc)
        assert se > 0 and abs(m - ex) < 4 * se


@pytest.mark.parametrize("N, k, gamma, n0, n, alpha, reps", [
    (100, 1, 0.05, 100, 100, 0.001, 1500),
    (100, 1, 0.09, 1000, 1000, 0.001, 1500),
    (20, 2, 0.03, 3, 30, 0.05, 1500),
])
def test_indivclass_matches_analytic(N, k, gamma, n0, n, alpha, reps):
    s = oracle.sample_oracle(N, k, gamma, n0, n, reps=reps, seed=8)
    r = oracle.indivclass_rates(s, alpha)
    exact = oracle.analytic_indivclass(N, k, gamma, n0, n, alpha)
    assert 0.05 < exact.certified < 0.95  # an informative point
    for mc, ex in ((r.certified, exact.certified), (r.certified_right, exact.certified_right)):
        m, se = _mean_se(mc)
        assert abs(m - ex) < 4 * se


def test_holm_dominates_bonferroni_and_budget_helps():
    s = oracle.sample_oracle(1000, 1, 0.05, 1000, 1000, reps=5, seed=9)
    bon = oracle.segcertify_rates(s, 0.9, 0.001, correction="bonferroni").certified
    holm = oracle.segcertify_rates(s, 0.9, 0.001, correction="holm").certified
    kf = oracle.segcertify_rates(s, 0.9, 0.001, correction="kfwer", budget=4).certified
    assert np.all(bon <= holm) and np.all(holm <= kf)
    with pytest.raises(ValueError, match="`budget`"):
        oracle.segcertify_rates(s, 0.9, 0.001, correction="holm", budget=1)
    with pytest.raises(ValueError, match="`tau`"):
        oracle.segcertify_rates(s, 0.4, 0.001)
    with pytest.raises(ValueError, match="`correction`"):
        oracle.segcertify_rates(s, 0.9, 0.001, correction="sidak")


# ---------------------------------------------------------------------------
# the script
# ---------------------------------------------------------------------------
def test_budgets_and_grid():
    assert pc.budgets_for(100) == [1, 2, 4]
    assert pc.budgets_for(10**6) == [1, 2, 4, 1000, 10000]
    assert len(pc.gamma_grid(0.001)) == 101 and pc.gamma_grid(0.01)[-1] == 0.1


def test_script_quick_run(tmp_path):
    out = tmp_path / "pc"
    args = ["--quick", "--out", str(out), "--figures", "2a,5,6b", "--reps", "3",
            "--no-progress"]
    assert pc.main(args) == 0
    path = out / "power_curves.csv"
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = list(reader)
    assert header == list(pc.COLUMNS) == (
        "figure,method,N,k,gamma,n0,n,alpha,tau,budget,reps,certified_rate,stderr,"
        "certified_right_rate,analytic_rate".split(","))
    figs = {r[0] for r in rows}
    assert figs == {"2a", "2b", "2c", "6b"}
    methods = {r[1] for r in rows}
    assert methods == {"jointclass", "indivclass", "segcertify_bonferroni", "segcertify_holm",
                       "segcertify_kfwer"}
    for name in ("power_fig2a.png", "power_fig5.png", "power_fig6b.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # same seed, same CSV; --plot-only redraws from it
    first = path.read_bytes()
    (out / "power_fig2a.png").unlink()
    assert pc.main(["--plot-only", "--out", str(out), "--figures", "2a"]) == 0
    assert (out / "power_fig2a.png").exists()
    out2 = tmp_path / "again"
    assert pc.main(["--quick", "--out", str(out2), "--figures", "2a,5,6b", "--reps", "3",
                    "--no-progress"]) == 0
    assert (out2 / "power_curves.csv").read_bytes() == first


def test_script_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        pc.main(["--figures", "3z", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        pc.main(["--plot-only", "--out", str(tmp_path / "missing")])



@pytest.mark.parametrize("m, p", [(99, 0.003), (99, 0.2), (1, 0.5), (5, 0.999), (3, 0.6)])
def test_zero_truncated_binomial(m, p):
    """The kernel's draw of Bin(m, p) conditioned on >= 1 (inversion and rejection branches)."""
    from multitest._oracle_kernels import positive_binomial as _positive_binomial

    g = np.random.default_rng(12)
    x = np.array([_positive_binomial(g, m, p) for _ in range(20_000)])
    assert x.min() >= 1 and x.max() <= m
    if m == 1:
        return
    pmf = stats.binom.pmf(np.arange(1, m + 1), m, p) / stats.binom.sf(0, m, p)
    assert _chisquare_p(np.bincount(x, minlength=m + 1)[1:], pmf) > 1e-3


def test_script_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """A run cut short (points saved, a torn last line) resumes to the same CSV, and
    restored points are not drawn again."""
    args = ["--quick", "--figures", "2a,6b", "--reps", "3", "--no-progress"]
    clean, cut = tmp_path / "clean", tmp_path / "cut"
    assert pc.main([*args, "--out", str(clean)]) == 0
    assert pc.main([*args, "--out", str(cut)]) == 0
    files = sorted((cut / "checkpoint").glob("*.jsonl"))
    assert [f.name.split("-")[0] for f in files] == ["2a", "6"]
    lines = files[0].read_text().splitlines()
    assert len(lines) == len(pc.gamma_grid(0.01))  # one line per point of 2a
    files[0].write_text("\n".join(lines[:4]) + "\n" + lines[4][:25])  # killed mid-line
    (cut / "power_curves.csv").unlink()
    drawn = []
    real = pc.oracle.sample_oracle
    monkeypatch.setattr(pc.oracle, "sample_oracle",
                        lambda *a, **kw: drawn.append(a[:3]) or real(*a, **kw))
    assert pc.main([*args, "--out", str(cut)]) == 0
    assert (cut / "power_curves.csv").read_bytes() == (clean / "power_curves.csv").read_bytes()
    assert len(drawn) == len(lines) - 4  # only the lost points of 2a; 6 was complete
    drawn.clear()
    assert pc.main([*args, "--out", str(cut), "--fresh"]) == 0
    assert len(drawn) > len(lines)
    assert (cut / "power_curves.csv").read_bytes() == (clean / "power_curves.csv").read_bytes()
