"""The linear probe behind LP-FT (Kumar et al. 2022): a linear model fitted on standardised frozen features,
folded back into one linear layer over the raw features, so the output layer can start from it exactly."""

from __future__ import annotations

from typing import Any

import numpy as np

# L2 strength of the probe on standardised features: scikit-learn's default. On 16 and 64 IMDB reviews (2 draws)
# and MiniLM's head input, C = 0.01-1 moved the probe's accuracy by at most 3 points (docs/benchmarks/small-data.md).
PROBE_C = 1.0


def standardised(features: np.ndarray, centred: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features scaled to variance 1 per column (constant columns left at 1), and to mean 0 when `centred` (an
    output layer without a bias cannot take the shift back)."""
    features = np.asarray(features, dtype=np.float64)
    mean = features.mean(axis=0) if centred else np.zeros(features.shape[1])
    scale = np.sqrt(((features - mean) ** 2).mean(axis=0))
    scale = np.where(scale > 1e-8, scale, 1.0)
    return (features - mean) / scale, mean, scale


def unscaled(
    weight: np.ndarray, bias: np.ndarray, mean: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(w, b) over standardised features as (w', b') over raw ones: w'x + b' == w((x - mean) / scale) + b."""
    raw = weight / scale
    return raw, bias - raw @ mean


def logistic(features: np.ndarray, targets: np.ndarray, seed: int, intercept: bool = True) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=PROBE_C, max_iter=2000, random_state=seed, fit_intercept=intercept)
    return model.fit(features, targets)
