"""Who is who: speaker embeddings (W, D), e.g. CAM++'s 192-dim, grouped into speakers by cosine similarity.

`cluster_speakers(embeddings, num_speakers)` gives one int label per window; `name_in_order`
turns labels into S1, S2, ... in order of first appearance. Pure numpy and scikit-learn (imported
inside the functions), deterministic.

The method, chosen on synthetic embeddings (below), is the spectral back end of FunASR's CAM++
diarization (funasr/models/campplus/cluster_backend.py, after 3D-Speaker's speakerlab/process/cluster.py)
with an AHC for short inputs:

- W >= MIN_SPECTRAL_WINDOWS (20): spectral clustering. Affinity: the cosine similarity of the
  windows, pruned per row to its largest PRUNE_SHARE (2.2 %, FunASR's pval) entries but at least
  MIN_NEIGHBOURS (6), made symmetric, negatives dropped. Number of speakers, when not given: the
  eigengap of the unnormalised graph Laplacian, k = argmax of lambda[i+1] - lambda[i] over the
  smallest MAX_SPEAKERS + 1 eigenvalues (so 1 to 10 speakers; 3D-Speaker's limit, FunASR's is 15).
  Labels: k-means (random_state 0) on the first k eigenvectors. When the number was estimated,
  minor clusters (at most MIN_CLUSTER_WINDOWS = 4 windows, or MINOR_SHARE = 5 % of W when that is
  less, at least 1; 3D-Speaker folds clusters under 4 windows) go to the larger cluster with the
  most similar mean, then clusters whose mean embeddings have a cosine similarity of MERGE_COSINE
  (0.8; FunASR merges at 0.78) or more are merged: one voice that the spectral step split, e.g.
  calm and angry, becomes one speaker again. Above MAX_SPECTRAL_WINDOWS (2000) windows the
  spectral step runs on an even subsample of that many and every window goes to the nearest
  cluster mean (FunASR switches to UMAP + HDBSCAN there), which keeps memory and time bounded
  (2 h of 0.75 s hops is 9600 windows).
- W < 20, number not given (FunASR answers a single speaker there): average-linkage
  agglomerative clustering on the cosine distance, stopped at AHC_DISTANCE (0.7): two groups stay
  apart when the mean cosine similarity between their windows is below 0.3. The eigengap cannot
  find more than W - 1 speakers and is unreliable on so few points.
- `num_speakers` given: spectral clustering with that k (no estimate, no folding or merging), so
  exactly k clusters; fewer only when W < k (each window its own) or the embeddings hold fewer
  than k distinct points.

Evidence (bench/bench_cluster.py, tests/speaker_sets.py): unit-length 192-dim embeddings = a
speaker direction + Gaussian noise of length 0.7 / 1.0 / 1.3 (mean same-speaker cosine 0.67 /
0.50 / 0.37), speaker directions with pairwise cosine 0 / 0.3 / 0.5, k = 1..5 speakers.
- 270 sets of 3-300 windows (equal, uneven, and one speaker with 80 % of the windows): the count
  is exactly right in 95.9 % (k = 1: 100 %, 2: 98 %, 3: 93 %, 4: 96 %, 5: 93 %; 96 / 97 / 96 % at
  the three noise levels), purity 0.988. Average-linkage AHC with a fixed cosine-distance
  threshold does 65.9 % (0.6), 79.3 % (0.7), 81.9 % (0.75), 65.9 % (0.8), and swings with the
  noise (0.6: 98 / 100 / 0 %; 0.75: 68 / 78 / 100 %): a fixed threshold has to sit between the
  same-speaker and the different-speaker distances, which move with the noise; the eigengap is
  relative and does not.
- The same sets of 20+ windows with 3 % outlier windows (random directions: noise, laughter,
  crosstalk): 96.8 %, purity 0.992 (the minor-cluster rule folds the outliers in); AHC 0-7 %
  (every outlier becomes a speaker).
- 180 tiny sets (1-4 windows per speaker): 80.0 % with AHC at 0.7 (k = 1: 94 %), the best of the
  thresholds tried (0.6: 67 %, 0.75: 77 %, 0.8: 61 %); the eigengap alone gets 31.7 %.
- Count given (k = 2..5): k clusters, purity 1.000; with 3 % outliers 0.974 (AHC with k clusters:
  0.745, outliers take whole clusters).
Speed on a 2-core CPU: 300 windows about 0.2 s, 2000 (and any number above) about 3-6 s.
Synthetic data fixes the method, not the constants: AHC_DISTANCE and MERGE_COSINE should be
checked on real CAM++ embeddings of known conversations.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

logger = logging.getLogger(__name__)

MIN_SPECTRAL_WINDOWS = 20  # fewer windows: AHC with a distance threshold when the number is estimated
AHC_DISTANCE = 0.7  # cosine distance (1 - similarity) at which average-linkage AHC stops merging
PRUNE_SHARE = 0.022  # share of each affinity row kept (its most similar windows) ...
MIN_NEIGHBOURS = 6  # ... but at least this many windows
MAX_SPEAKERS = 10  # the most speakers the eigengap can estimate
MIN_CLUSTER_WINDOWS = 4  # estimated clusters this small (or smaller) join their nearest larger cluster ...
MINOR_SHARE = 0.05  # ... or, when that is less, this share of the windows (at least 1 window)
MERGE_COSINE = 0.8  # estimated clusters whose mean embeddings are at least this similar are merged
MAX_SPECTRAL_WINDOWS = 2000  # above: spectral clustering of an even subsample, the rest by nearest cluster mean
SEED = 0


def cluster_speakers(embeddings: np.ndarray, num_speakers: int | None = None) -> np.ndarray:
    """(W,) int labels 0..k-1 of speaker embeddings (W, D) compared by cosine similarity.

    `num_speakers`: exactly that many clusters (fewer when W is smaller); None: estimated, 1 to
    MAX_SPEAKERS. The labels are numbered in order of first appearance in the array, so a single
    speaker is all zeros. See the module docstring for the method and its thresholds."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a (windows, dimensions) array, not shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings hold NaN or infinite values")
    if num_speakers is not None and (isinstance(num_speakers, bool) or int(num_speakers) != num_speakers or num_speakers < 1):
        raise ValueError(f"num_speakers must be a whole number from 1, or None to estimate it; not {num_speakers!r}")
    w = len(x)
    if w == 0:
        return np.zeros(0, dtype=np.int64)
    x = _unit(x)
    if num_speakers is not None:
        k = int(num_speakers)
        if w <= k:
            return np.arange(w, dtype=np.int64)
        labels = np.zeros(w, dtype=np.int64) if k == 1 else _spectral(x, k)
    elif w == 1:
        return np.zeros(1, dtype=np.int64)
    elif w < MIN_SPECTRAL_WINDOWS:
        labels = _ahc(x, AHC_DISTANCE)
    else:
        labels = _merge_similar(_absorb_minor(_spectral(x, None), x), x)
    labels = _first_seen(labels)
    if num_speakers is None:
        logger.debug(
            "%d windows: %d speakers estimated (%s)", w, labels.max() + 1, "AHC" if w < MIN_SPECTRAL_WINDOWS else "eigengap"
        )
    return labels


def name_in_order(labels, starts) -> list[str]:
    """Names S1, S2, ... for cluster ids, numbered by the first start time (s) of each cluster.

    `labels[i]` and `starts[i]` belong to window or segment i; the answer is its name, in the same
    order as given. Equal starts keep the given order."""
    labels, starts = list(labels), np.asarray(starts, dtype=np.float64)
    if len(labels) != len(starts):
        raise ValueError(f"{len(labels)} labels but {len(starts)} start times")
    names: dict = {}
    for i in np.argsort(starts, kind="stable"):
        names.setdefault(labels[i], f"S{len(names) + 1}")
    return [names[label] for label in labels]


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (an all-zero row stays zero; see _similarity)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _first_seen(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... in order of first appearance."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.ravel()]


def _similarity(x: np.ndarray) -> np.ndarray:
    """(W, W) cosine similarity of unit rows; all-zero rows (no direction) are alike, and unlike the rest."""
    sim = x @ x.T
    zero = ~x.any(1)
    sim[np.ix_(zero, zero)] = 1.0
    return sim


def _ahc(x: np.ndarray, distance: float) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    ahc = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average", distance_threshold=distance)
    return ahc.fit_predict(np.clip(1.0 - _similarity(x), 0.0, 2.0))


def _spectral(x: np.ndarray, k: int | None) -> np.ndarray:
    """Spectral clustering of unit rows; above MAX_SPECTRAL_WINDOWS an even subsample, the rest by nearest mean."""
    w = len(x)
    if w <= MAX_SPECTRAL_WINDOWS:
        return _spectral_all(x, k)
    sample = np.unique(np.linspace(0, w - 1, MAX_SPECTRAL_WINDOWS).round().astype(np.int64))
    sample_labels = _spectral_all(x[sample], k)
    means = _unit(np.stack([x[sample][sample_labels == c].mean(0) for c in np.unique(sample_labels)]))
    return (x @ means.T).argmax(1)


def _spectral_all(x: np.ndarray, k: int | None) -> np.ndarray:
    from scipy.linalg import eigh
    from sklearn.cluster import KMeans

    w = len(x)
    affinity = _similarity(x)
    np.fill_diagonal(affinity, 0.0)
    keep = min(max(MIN_NEIGHBOURS, int(PRUNE_SHARE * w)), w - 1)
    low = np.argpartition(affinity, w - keep, axis=1)[:, : w - keep]  # all but each row's `keep` largest
    np.put_along_axis(affinity, low, 0.0, axis=1)
    affinity = np.maximum(0.5 * (affinity + affinity.T), 0.0)
    laplacian = np.diag(affinity.sum(1)) - affinity
    top = min(MAX_SPEAKERS, w - 1)
    eigenvalues, eigenvectors = eigh(laplacian, subset_by_index=[0, min(max(top, k or 0), w - 1)])  # the smallest only
    if k is None:
        k = int(np.argmax(np.diff(eigenvalues[: top + 1]))) + 1
    if k == 1:
        return np.zeros(w, dtype=np.int64)
    with warnings.catch_warnings():  # fewer distinct points than k (identical embeddings): fewer clusters
        warnings.simplefilter("ignore")
        return KMeans(n_clusters=k, n_init=10, random_state=SEED).fit_predict(eigenvectors[:, :k])


def _absorb_minor(labels: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Windows of minor clusters (see _minor_size) join the larger cluster with the most similar mean."""
    ids, sizes = np.unique(labels, return_counts=True)
    major = ids[sizes > _minor_size(len(labels))]
    if len(major) == len(ids):
        return labels
    if len(major) == 0:
        return np.zeros_like(labels)
    means = _unit(np.stack([x[labels == c].mean(0) for c in major]))
    labels = labels.copy()
    minor = ~np.isin(labels, major)
    labels[minor] = major[(x[minor] @ means.T).argmax(1)]
    return labels


def _minor_size(w: int) -> int:
    """Clusters of at most this many windows are minor: MIN_CLUSTER_WINDOWS, or MINOR_SHARE of W when less (at least 1)."""
    return min(MIN_CLUSTER_WINDOWS, max(1, int(MINOR_SHARE * w)))


def _merge_similar(labels: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The two clusters with the most similar means merge while that similarity is at least MERGE_COSINE."""
    labels = labels.copy()
    while True:
        ids = np.unique(labels)
        if len(ids) < 2:
            return labels
        means = _unit(np.stack([x[labels == c].mean(0) for c in ids]))
        sim = means @ means.T
        np.fill_diagonal(sim, -np.inf)
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if sim[i, j] < MERGE_COSINE:
            return labels
        labels[labels == ids[j]] = ids[i]
