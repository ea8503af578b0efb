"""Speaker clustering on synthetic embeddings: how often the estimated number of speakers is right.

    python bench/bench_cluster.py [--sets 6] [--seed 0]

The sets (tests/speaker_sets.py): k = 1..5 speakers x noise 0.7 / 1.0 / 1.3 (mean same-speaker
cosine 0.67 / 0.50 / 0.37) x speaker similarity rho 0 / 0.3 / 0.5 x `--sets` sets each, cycling
through three shapes: few windows (3-11 per speaker, the same for all), uneven (5-79 each) and
one speaker with 80 % of 30-300 windows. Then tiny sets (1-4 windows per speaker) and the
uneven/80 % sets with 3 % outlier windows (random directions). Compared: `cluster_speakers`
(emotion_app/speakers/cluster.py), its spectral step alone at every W (no AHC below 20 windows)
and average-linkage AHC on the cosine distance at fixed
thresholds; with the count given, `cluster_speakers(x, k)` and average-linkage AHC with k
clusters. Prints markdown tables: how often the number of clusters is exactly k, and the mean
purity (share of the real windows in their cluster's majority speaker; outliers not counted),
overall, per noise level and per true count k.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from speaker_sets import purity, speakers  # noqa: E402

from emotion_app.speakers import cluster  # noqa: E402
from emotion_app.speakers.cluster import cluster_speakers  # noqa: E402

NOISES = (0.7, 1.0, 1.3)
RHOS = (0.0, 0.3, 0.5)
KS = (1, 2, 3, 4, 5)


def cases(sets: int, seed: int, tiny: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for k in KS:
        for noise in NOISES:
            for rho in RHOS:
                for j in range(sets):
                    if tiny:
                        counts = [int(c) for c in rng.integers(1, 5, size=k)]
                    elif j % 3 == 0:
                        counts = [int(rng.integers(3, 12))] * k
                    elif j % 3 == 1:
                        counts = [int(c) for c in rng.integers(5, 80, size=k)]
                    else:
                        total = int(rng.integers(30, 300))
                        counts = [total] if k == 1 else [int(0.8 * total)] + [max(2, int(0.2 * total / (k - 1)))] * (k - 1)
                    out.append(dict(k=k, counts=counts, noise=noise, rho=rho, shape=j % 3, seed=int(rng.integers(1 << 30))))
    return out


def ahc(distance: float):
    def run(x: np.ndarray, _k: int) -> np.ndarray:
        from sklearn.cluster import AgglomerativeClustering

        if len(x) == 1:
            return np.zeros(1, dtype=int)
        return AgglomerativeClustering(None, metric="cosine", linkage="average", distance_threshold=distance).fit_predict(x)

    return run


def spectral_only(x: np.ndarray, _k: int) -> np.ndarray:
    """cluster_speakers' estimate without its AHC below 20 windows."""
    if len(x) == 1:
        return np.zeros(1, dtype=int)
    u = cluster._unit(x.astype(np.float64))
    return cluster._merge_similar(cluster._absorb_minor(cluster._spectral(u, None), u), u)


def ahc_k(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(k, metric="cosine", linkage="average").fit_predict(x)


def evaluate(method, sets: list[dict], outliers: bool = False) -> dict:
    """`method(x, k)`: labels of embeddings x (k: the true count, for methods that are given it)."""
    rows = []
    for c in sets:
        n_out = max(1, int(0.03 * sum(c["counts"]))) if outliers else 0
        x, y = speakers(c["counts"], c["noise"], c["rho"], c["seed"], outliers=n_out)
        labels = method(x, c["k"])
        rows.append((len(np.unique(labels)) == c["k"], purity(labels, y), c["noise"], c["k"]))
    return {
        "sets": len(rows),
        "count": float(np.mean([r[0] for r in rows])),
        "purity": float(np.mean([r[1] for r in rows])),
        **{f"noise {n}": float(np.mean([r[0] for r in rows if r[2] == n])) for n in NOISES},
        **{f"k={k}": float(np.mean([r[0] for r in rows if r[3] == k])) for k in KS if any(r[3] == k for r in rows)},
    }


def table(title: str, results: dict[str, dict]) -> str:
    columns = [c for c in next(iter(results.values())) if c.startswith(("noise", "k="))]
    lines = [f"### {title}", "", "| method | sets | count right | purity | " + " | ".join(columns) + " |"]
    lines.append("|---" * (4 + len(columns)) + "|")
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['sets']} | {r['count']:.1%} | {r['purity']:.3f} | "
            + " | ".join(f"{r[c]:.0%}" for c in columns)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", type=int, default=6, help="sets per (k, noise, rho)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    methods = {"cluster_speakers": lambda x, _k: cluster_speakers(x, None), "spectral + eigengap at any W": spectral_only}
    methods.update({f"AHC average, cosine {t}": ahc(t) for t in (0.6, 0.7, 0.75, 0.8)})
    t0 = time.perf_counter()
    main_sets, tiny_sets = cases(a.sets, a.seed), cases(max(a.sets * 2 // 3, 1), a.seed + 1, tiny=True)
    noisy_sets = [c for c in main_sets if sum(c["counts"]) >= 20]
    print(table("Estimated count, 3-300 windows", {n: evaluate(m, main_sets) for n, m in methods.items()}))
    print(table("Estimated count, tiny sets (1-4 windows per speaker)", {n: evaluate(m, tiny_sets) for n, m in methods.items()}))
    print(
        table(
            "Estimated count, 20-300 windows + 3 % outlier windows",
            {n: evaluate(m, noisy_sets, True) for n, m in methods.items()},
        )
    )
    given = {"cluster_speakers(x, k)": cluster_speakers, "AHC average, n_clusters=k": ahc_k}
    several, several_noisy = [c for c in main_sets if c["k"] > 1], [c for c in noisy_sets if c["k"] > 1]
    print(table("Count given (k = 2..5)", {n: evaluate(m, several) for n, m in given.items()}))
    print(table("Count given, 3 % outlier windows", {n: evaluate(m, several_noisy, True) for n, m in given.items()}))
    print(f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
