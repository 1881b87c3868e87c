# Expected numbers of the unit tests in crates/monitor/src/drift.rs, computed
# with scipy from the same fixtures, independently of the Rust code.
# Run: python3 -m venv /tmp/sp2 && /tmp/sp2/bin/pip install scipy numpy && /tmp/sp2/bin/python <this file>
# Output with numpy and scipy versions as printed is quoted in the tests.
#
# The binned tests mean "the test on the bin-centre samples": each window
# value is put in the reference histogram's bin (left-closed bins, the last
# closed, values beyond either end in the outer bins), then every bin
# contributes its centre repeated by its count.
import numpy as np, scipy, scipy.stats as st
from scipy.spatial import distance

np.set_printoptions(legacy="1.25")  # plain reprs of numpy scalars
print("scipy", scipy.__version__, "numpy", np.__version__)

# Reference: 0..=20, each ten times; ten equal bins of width 2 over [0, 20].
ref = np.array([i % 21 for i in range(210)], dtype=float)
edges = np.linspace(ref.min(), ref.max(), 11)
# Windows: a mild shift and a strong one, both partly past the reference max.
mild = np.array([(i * 7) % 23 for i in range(120)], dtype=float)
strong = np.array([(i % 21) + 6 for i in range(150)], dtype=float)

def binned(values):
    return np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0]

centres = (edges[:-1] + edges[1:]) / 2
def centre_sample(counts):
    return np.repeat(centres, counts)

r = binned(ref)
print("edges", edges.tolist())
print("ref counts", r.tolist())
for name, win in [("mild", mild), ("strong", strong), ("same", ref)]:
    w = binned(win)
    a, b = centre_sample(r), centre_sample(w)
    n, m = len(a), len(b)
    ks = st.ks_2samp(a, b, method="asymp")
    en = n * m / (n + m)
    p_big = st.kstwobign.sf(np.sqrt(en) * ks.statistic)
    raw = st.ks_2samp(ref, win, method="asymp")
    w1 = st.wasserstein_distance(a, b)
    norm = max(np.std(ref), 0.001)
    # Few-valued view: the bins as categories (the empty-on-both-sides bins dropped).
    keep = (r + w) > 0
    chi = st.chisquare(w[keep], r[keep] / r.sum() * w.sum())
    js = distance.jensenshannon(r / r.sum(), w / w.sum())
    eps = 1e-6
    pe = np.where(r == 0, eps, r / r.sum()); pa = np.where(w == 0, eps, w / w.sum())
    psi = np.sum((pa - pe) * np.log(pa / pe))
    print(f"[{name}] window counts {w.tolist()}")
    print(f"  KS binned D={ks.statistic!r} p(kstwobign, n_eff={en!r})={p_big!r} scipy asymp p(kstwo)={ks.pvalue!r}")
    print(f"  KS raw D={raw.statistic!r} (binned D is a lower bound)")
    print(f"  W1 binned={w1!r} ref np.std={np.std(ref)!r} normalised={w1 / norm!r}")
    print(f"  chi2 bins stat={chi.statistic!r} p={chi.pvalue!r} df={keep.sum() - 1}")
    print(f"  JS bins={js!r} PSI bins={psi!r}")

# Categorical: reference a:50 b:30 c:20.
cats = ["a", "b", "c", "d"]
ref_c = np.array([50, 30, 20, 0])
for name, win_c in [("no new", np.array([30, 25, 25, 0])), ("new d", np.array([30, 25, 25, 10]))]:
    keep = (ref_c + win_c) > 0
    f_exp = ref_c[keep] / ref_c.sum() * win_c.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        chi = st.chisquare(win_c[keep], f_exp)
    js = distance.jensenshannon(ref_c[keep] / ref_c.sum(), win_c[keep] / win_c.sum())
    eps = 1e-6
    pe = np.where(ref_c[keep] == 0, eps, ref_c[keep] / ref_c.sum())
    pa = np.where(win_c[keep] == 0, eps, win_c[keep] / win_c.sum())
    psi = np.sum((pa - pe) * np.log(pa / pe))
    print(f"[categorical {name}] chi2 stat={chi.statistic!r} p={chi.pvalue!r} JS={js!r} PSI={psi!r}")

for lam in [0.3, 0.5, 0.9, 1.0, 1.36, 2.0, 3.0]:
    print(f"kstwobign.sf({lam})={st.kstwobign.sf(lam)!r}")
