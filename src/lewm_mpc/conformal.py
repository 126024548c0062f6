"""Calibrated surprise thresholds (:class:`SurpriseThreshold`) and the conformal quantiles
behind them: the split-conformal one, and two ways to hold its rate with a confidence over
calibration sets (the binomial bound on an order statistic for independent scores, a bootstrap
over whole episodes for correlated ones). :meth:`SurpriseThreshold.from_scores` explains when
each applies; :mod:`lewm_mpc.surprise` measures the scores and monitors with the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

__all__ = [
    "BOOTSTRAP_SETS",
    "MIN_BOOTSTRAP_EPISODES",
    "SurpriseThreshold",
    "confident_rank",
    "conformal_threshold",
    "episode_bootstrap_threshold",
]

BOOTSTRAP_SETS = 2000  # calibration sets resampled by episode for a confident threshold
MIN_BOOTSTRAP_EPISODES = 10


@dataclass(frozen=True)
class SurpriseThreshold:
    """A calibrated surprise threshold.

    Attributes:
        value: the threshold on the score (see ``motion_offset``).
        false_alarm: the requested false-alarm rate per block.
        windows: held-out windows it was calibrated on.
        median: the median score of those windows (for scale).
        motion_offset: None: the score is the surprise itself (a latent distance);
            a number: the score is relative, ``surprise / (motion_offset + motion) **
            motion_power``.
        distance_scale: with ``relative_scale``, the score is combined: the larger of
            ``surprise / distance_scale`` and the relative score ``/ relative_scale`` (each
            score in units of its calibration median). None: not combined.
        relative_scale: the relative score's calibration median, for a combined score.
        readout: whether the surprises were measured through a readout (task quantities read
            from the latents, see the module docstring) rather than in latent space.
        confidence: None: the false-alarm rate is at most ``false_alarm`` on average over
            calibration sets (split-conformal); a number: the rate is at most ``false_alarm``
            with this probability over calibration sets (see :meth:`from_scores`).
        episodes: how many calibration episodes the confidence was bootstrapped over
            (:meth:`from_scores`'s ``groups``); None otherwise.
    """

    value: float
    false_alarm: float
    windows: int
    median: float
    motion_offset: float | None = None
    motion_power: float = 1.0
    distance_scale: float | None = None
    relative_scale: float | None = None
    readout: bool = False
    confidence: float | None = None
    episodes: int | None = None

    def score(self, surprise: np.ndarray | float, motion: np.ndarray | float) -> np.ndarray:
        """The score compared with :attr:`value`, from surprise and predicted motion."""
        values = np.asarray(surprise, dtype=np.float64)
        if self.motion_offset is None:
            return values
        moved = np.asarray(motion, dtype=np.float64)
        relative = values / (self.motion_offset + moved) ** self.motion_power
        if self.distance_scale is None or self.relative_scale is None:
            return relative
        return np.maximum(values / self.distance_scale, relative / self.relative_scale)

    @classmethod
    def from_scores(
        cls,
        scores: np.ndarray | Sequence[float],
        false_alarm: float = 0.01,
        motions: np.ndarray | Sequence[float] | None = None,
        combine: bool = False,
        readout: bool = False,
        confidence: float | None = None,
        groups: np.ndarray | Sequence[int] | None = None,
        seed: int = 0,
        offset_scale: float = 1.0,
        motion_power: float = 1.0,
    ) -> SurpriseThreshold:
        """The split-conformal threshold of unperturbed surprises ``scores``.

        The ``ceil((n + 1)(1 - false_alarm)) / n`` empirical quantile of the ``n`` scores: a
        new score exchangeable with them exceeds it with probability at most ``false_alarm``.
        With ``motions`` (each block's predicted latent motion, as ``scores``) the threshold is
        relative (see the module docstring): the offset is the median motion and the quantile
        is taken of ``surprise / (offset + motion)``. With ``combine`` (needs ``motions``) it is
        taken of the larger of the raw and the relative score, each divided by its median.
        ``offset_scale`` and ``motion_power`` shape the relative score:
        ``surprise / (offset_scale * median motion + motion) ** motion_power`` (defaults 1, 1;
        a power under 1 leans toward the raw distance, which sees a push in a fast block).
        Scores from closed-loop episodes (the ``surprise`` and ``motion`` of
        ``MPCController.surprises``) calibrate for the motion the planner produces, which data
        windows of another policy may not represent. Use many episodes: the blocks of one
        episode are correlated, so the promise holds on average over calibration sets and a
        small set gives a threshold far from its target (raw distance on the point mass, 1%
        asked: 30 episodes, 330 scores, gave 6.0% false alarms on other episodes; 100
        episodes, 1100 scores, gave 0.9-1.3%; ``benchmarks/surprise.py``). ``readout``: the
        scores were measured through a readout (a monitor with one), which the threshold then
        requires of its monitor.

        ``confidence`` (e.g. 0.95) asks for the rate to stay at or under ``false_alarm`` for
        all but a fraction ``1 - confidence`` of calibration sets, not only on average, at the
        cost of a higher threshold (``groups`` and ``seed`` serve it only). With ``groups``
        (the episode of each score) the blocks of an episode are taken as correlated, as they
        are: the threshold is the ``confidence`` quantile of the split-conformal thresholds of
        2000 calibration sets resampled by whole episodes (a percentile bootstrap, seeded by
        ``seed``; at least 10 episodes). Without,
        the scores are taken as independent: the threshold is the ``k``-th smallest score with
        ``k`` the least for which ``P(Binomial(n, 1 - false_alarm) >= k) <= 1 - confidence``
        (the coverage of the ``k``-th order statistic of ``n`` exchangeable scores is
        ``Beta(k, n - k + 1)``), which needs more than ``log(1 - confidence) / log(1 -
        false_alarm)`` scores (299 for 1% at 0.95) and promises too much for an episode's
        correlated blocks.

        Raises:
            ValueError: ``false_alarm`` or ``confidence`` outside (0, 1), no score or a
                non-finite one, motions that do not match the scores, ``combine`` without
                motions, fewer scores than ``confidence`` needs, ``groups`` that do not match
                the scores or hold fewer than 10 episodes, or a shape that is not > 0.
        """
        if not 0 < false_alarm < 1:
            raise ValueError(f"false_alarm must lie in (0, 1), got {false_alarm}")
        if confidence is not None and not 0 < confidence < 1:
            raise ValueError(f"confidence must lie in (0, 1) or be None, got {confidence}")
        if not (offset_scale > 0 and motion_power > 0):
            raise ValueError(f"offset_scale and motion_power must be > 0, got {offset_scale} "
                             f"and {motion_power}")  # fmt: skip
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        if values.size == 0 or not np.all(np.isfinite(values)):
            raise ValueError("need at least one finite surprise score")
        if combine and motions is None:
            raise ValueError("combine=True needs the motions: it combines the raw and the "
                             "relative score")  # fmt: skip
        offset = scales = None
        if motions is not None:
            moved = np.asarray(motions, dtype=np.float64).reshape(-1)
            if moved.shape != values.shape or not np.all(np.isfinite(moved) & (moved >= 0)):
                raise ValueError(
                    f"motions must be {values.size} finite values >= 0, one per score, got "
                    f"{moved.size}"
                )
            offset = max(offset_scale * float(np.median(moved)), 1e-12)
            relative = values / (offset + moved) ** motion_power
            if combine:
                scales = (max(float(np.median(values)), 1e-12),
                          max(float(np.median(relative)), 1e-12))  # fmt: skip
                values = np.maximum(values / scales[0], relative / scales[1])
            else:
                values = relative
        count, episodes = values.size, None
        if confidence is None:
            value = conformal_threshold(values, false_alarm)
        elif groups is None:
            value = float(np.sort(values)[confident_rank(count, false_alarm, confidence) - 1])
        else:
            labels = np.asarray(groups).reshape(-1)
            if labels.shape != values.shape:
                raise ValueError(f"groups must hold one episode per score ({count}), got "
                                 f"{labels.size}")  # fmt: skip
            value, episodes = episode_bootstrap_threshold(values, labels, false_alarm,
                                                          confidence, seed)  # fmt: skip
        return cls(value=value, false_alarm=false_alarm, windows=count,
                   median=float(np.median(values)), motion_offset=offset,
                   motion_power=motion_power,
                   distance_scale=None if scales is None else scales[0],
                   relative_scale=None if scales is None else scales[1],
                   readout=bool(readout), confidence=confidence, episodes=episodes)  # fmt: skip


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
