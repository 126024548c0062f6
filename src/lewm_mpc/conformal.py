"""Conformal thresholds of calibration scores: the split-conformal quantile, and two ways to
hold its rate with a confidence over calibration sets (the binomial bound on an order statistic
for independent scores, a bootstrap over whole episodes for correlated ones).
:meth:`lewm_mpc.surprise.SurpriseThreshold.from_scores` explains when each applies.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom

__all__ = [
    "BOOTSTRAP_SETS",
    "MIN_BOOTSTRAP_EPISODES",
    "confident_rank",
    "conformal_threshold",
    "episode_bootstrap_threshold",
]

BOOTSTRAP_SETS = 2000  # calibration sets resampled by episode for a confident threshold
MIN_BOOTSTRAP_EPISODES = 10


def conformal_threshold(values: np.ndarray, false_alarm: float) -> float:
    """The split-conformal threshold: the ``ceil((n + 1)(1 - false_alarm)) / n`` empirical
    quantile of the ``n`` scores (their maximum when ``n`` is too small for the rate)."""
    level = min(1.0, math.ceil((values.size + 1) * (1 - false_alarm)) / values.size)
    return float(np.quantile(values, level, method="higher"))


def episode_bootstrap_threshold(
    values: np.ndarray, groups: np.ndarray, false_alarm: float, confidence: float, seed: int
) -> tuple[float, int]:
    """The ``confidence`` quantile of the split-conformal thresholds (as
    :func:`conformal_threshold`) of :data:`BOOTSTRAP_SETS` calibration sets resampled by whole
    episodes (``groups``: each score's episode), and the episode count.

    A resampled set is a count per episode; its threshold is read off the scores sorted once,
    weighted by their episode's count, so no set is materialized.

    Raises:
        ValueError: fewer than :data:`MIN_BOOTSTRAP_EPISODES` episodes.
    """
    _, members = np.unique(groups, return_inverse=True)
    episodes = int(members.max()) + 1
    if episodes < MIN_BOOTSTRAP_EPISODES:
        raise ValueError(
            f"a threshold bootstrapped over episodes needs at least {MIN_BOOTSTRAP_EPISODES} "
            f"calibration episodes, got {episodes}"
        )
    order = np.argsort(values, kind="stable")
    ascending, owner = values[order], members[order]  # (n,) scores and their episodes
    rng = np.random.default_rng(seed)
    thresholds = []
    for start in range(0, BOOTSTRAP_SETS, 250):  # (250, n) weights at a time
        sets = min(250, BOOTSTRAP_SETS - start)
        picked = rng.integers(0, episodes, (sets, episodes))  # episodes drawn per set
        counts = np.zeros((sets, episodes))
        np.add.at(counts, (np.arange(sets)[:, None], picked), 1.0)
        cumulative = np.cumsum(counts[:, owner], axis=1)  # (sets, n) scores <= each sorted one
        size = cumulative[:, -1]  # scores in each set
        level = np.minimum(1.0, np.ceil((size + 1) * (1 - false_alarm)) / size)
        index = np.ceil(level * (size - 1))  # 0-based, np.quantile's "higher"
        thresholds.append(ascending[(cumulative <= index[:, None]).sum(axis=1)])
    return float(np.quantile(np.concatenate(thresholds), confidence, method="higher")), episodes


def confident_rank(count: int, false_alarm: float, confidence: float) -> int:
    """The rank (1-based, ascending) of the calibration score whose exceedance rate is at most
    ``false_alarm`` with probability ``confidence``: the least ``k`` with
    ``P(Binomial(count, 1 - false_alarm) >= k) <= 1 - confidence``
    (:meth:`SurpriseThreshold.from_scores`).

    Raises:
        ValueError: too few scores (``(1 - false_alarm) ** count > 1 - confidence``).
    """
    rank = int(binom.ppf(confidence, count, 1 - false_alarm)) + 1
    if rank > count:
        needed = math.ceil(math.log(1 - confidence) / math.log(1 - false_alarm))
        raise ValueError(
            f"a false-alarm rate of {false_alarm:g} at confidence {confidence:g} needs at "
            f"least {needed} calibration scores, got {count}: calibrate on more episodes"
        )
    return rank
