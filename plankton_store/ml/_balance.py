"""A new balanced selection of train positions every epoch, by policy.

:class:`BalancedSampler` draws, per :data:`BALANCE_POLICIES`, one :class:`Selection` per
epoch. Random under/over-sampling draws sample indices per class (targets by
imbalanced-learn's sampling-strategy rules); ``cluster-centroids`` and ``smote`` need a pixel
representation, so they work on a small pooled copy of the images and still return indices
(SMOTE as ``(i, j, step)`` triples whose pixels are interpolated per batch): no copy of the
pixels is resampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BALANCE_POLICIES", "BalancedSampler", "Selection"]

#: Values of ``--balance``.
BALANCE_POLICIES: tuple[str, ...] = (
    "none",
    "undersample",
    "oversample",
    "class-weight",
    "sqrt",
    "cluster-centroids",
    "smote",
)


@dataclass
class Selection:
    """One epoch's draw: train positions in the order they are fed.

    ``partners`` / ``steps`` describe SMOTE samples: the pixels fed are
    ``x[position] + step * (x[partner] - x[position])`` where ``partner >= 0``.
    ``weights`` are per-sample loss weights (``class-weight``), else None.
    """

    positions: np.ndarray
    partners: np.ndarray | None = None
    steps: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.positions)

    def take(self, order: np.ndarray) -> Selection:
        return Selection(
            self.positions[order],
            None if self.partners is None else self.partners[order],
            None if self.steps is None else self.steps[order],
            None if self.weights is None else self.weights[order],
        )


class BalancedSampler:
    """Draws a new, shuffled, balanced selection of train positions every epoch.

    Parameters
    ----------
    labels
        Label code of each train position.
    n_classes
        Number of classes (codes ``0 .. n_classes - 1``).
    policy
        One of :data:`BALANCE_POLICIES`:

        - ``none``: every train sample once.
        - ``undersample`` / ``oversample``: random under- / over-sampling of the indices
          as imbalanced-learn's ``RandomUnderSampler`` / ``RandomOverSampler`` do it (a
          class keeps a random subset without replacement, or all its samples plus random
          repeats); every class gets the smallest / largest class's count.
        - ``class-weight``: every sample once, weighted ``n / (classes * count[class])``.
        - ``sqrt``: as many samples as the train split, each class drawn in proportion to the
          square root of its count (random under- and over-sampling to per-class targets):
          rare classes are seen far more often than in ``none`` while
          big classes keep most of their variety, a middle way that suits long-tailed data.
        - ``cluster-centroids``: imbalanced-learn's ``ClusterCentroids`` with hard voting
          (the real sample nearest to each centroid) and ``MiniBatchKMeans`` as the
          estimator, per class on ``represent`` (pooled images), so that it stays fast on
          the full-scale store; every class gets the smallest class's count.
        - ``smote``: imbalanced-learn's SMOTE algorithm (5 nearest neighbours in the class,
          uniform step), neighbours found once on ``represent``; every class is raised to
          the largest class's count, the synthetic samples kept as ``(i, j, step)``.
    seed
        Epoch ``e`` draws from ``numpy.random.default_rng([seed, e])``: repeatable.
    represent
        ``(n, d)`` float32 representation for ``cluster-centroids`` and ``smote``
        (e.g. :meth:`~plankton_store.ml.TrainSet.pooled`).
    """

    def __init__(
        self,
        labels: np.ndarray,
        n_classes: int,
        policy: str = "none",
        seed: int = 0,
        represent: np.ndarray | None = None,
    ) -> None:
        if policy not in BALANCE_POLICIES:
            raise ValueError(f"unknown balance policy {policy!r}; choose from {BALANCE_POLICIES}")
        if policy in ("cluster-centroids", "smote") and represent is None:
            raise ValueError(f"--balance {policy} needs a sample representation")
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_classes = n_classes
        self.policy = policy
        self.seed = seed
        self.represent = represent
        self.counts = np.bincount(self.labels, minlength=n_classes)
        present = self.counts[self.counts > 0]
        if not len(present):
            raise ValueError("the train split is empty")
        self.min_count, self.max_count = int(present.min()), int(present.max())
        self._neighbours: dict[int, np.ndarray] = {}
        self._targets = self._resolve_targets()
        # Train positions of each class (ascending), found once: every epoch's draw is then
        # per class and costs O(epoch size). (imbalanced-learn's samplers re-validate and
        # re-scan the whole label vector on every call: ~16 ms per epoch on the full-scale
        # train split, more than a 2,700-sample undersampled epoch takes to draw and gather.)
        order = np.argsort(self.labels, kind="stable")
        bounds = np.cumsum(self.counts)[:-1]
        self._members = dict(enumerate(np.split(order, bounds)))

    def _resolve_targets(self) -> np.ndarray | None:
        """Samples per class code of a random under/over-sampling policy (None for the
        others), with imbalanced-learn's sampling-strategy rules."""
        from imblearn.utils import check_sampling_strategy

        if self.policy == "undersample":
            keep = check_sampling_strategy("all", self.labels, "under-sampling")
            return self._as_targets(keep)
        if self.policy == "oversample":
            add = check_sampling_strategy("all", self.labels, "over-sampling")
            return self.counts + self._as_targets(add)
        if self.policy == "sqrt":
            return self.sqrt_targets()
        return None

    def _as_targets(self, per_class: dict) -> np.ndarray:
        targets = np.zeros(self.n_classes, dtype=np.int64)
        for code, n in per_class.items():
            targets[int(code)] = int(n)
        return targets

    def epoch_size(self) -> int:
        """Samples per epoch (the same every epoch)."""
        if self._targets is not None:  # undersample, oversample, sqrt
            return int(self._targets.sum())
        n_present = int((self.counts > 0).sum())
        if self.policy == "cluster-centroids":
            return n_present * self.min_count
        if self.policy == "smote":
            return n_present * self.max_count
        return len(self.labels)

    def sqrt_targets(self) -> np.ndarray:
        """Samples per class code of the ``sqrt`` policy: proportional to ``sqrt(count)``,
        at least one for every present class, summing to about the train size."""
        root = np.sqrt(self.counts.astype(np.float64))
        targets = np.rint(len(self.labels) * root / root.sum()).astype(np.int64)
        return np.where(self.counts > 0, np.maximum(targets, 1), 0)

    def class_weights(self) -> np.ndarray:
        """scikit-learn's ``balanced`` weights per class code (0 for absent classes)."""
        n_present = int((self.counts > 0).sum())
        with np.errstate(divide="ignore"):
            weights = len(self.labels) / (n_present * self.counts.astype(np.float64))
        return np.where(self.counts > 0, weights, 0.0).astype(np.float32)

    def epoch(self, epoch: int) -> Selection:
        """The shuffled selection of epoch ``epoch``."""
        rng = np.random.default_rng([self.seed, epoch])
        state = int(rng.integers(2**31 - 1))
        positions = np.arange(len(self.labels))
        if self._targets is not None:
            selection = Selection(self._draw(self._targets, rng))
        elif self.policy == "class-weight":
            selection = Selection(positions, weights=self.class_weights()[self.labels])
        elif self.policy == "cluster-centroids":
            selection = Selection(self._cluster_centroids(state))
        elif self.policy == "smote":
            selection = self._smote(rng)
        else:
            selection = Selection(positions)
        return selection.take(rng.permutation(len(selection)))

    def _draw(self, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``targets[c]`` positions of each class ``c``: a random subset without
        replacement where the class has more, all of them plus random repeats where fewer."""
        drawn = []
        for code, members in self._members.items():
            target = int(targets[code])
            if target <= len(members):
                drawn.append(rng.choice(members, target, replace=False))
            else:
                drawn.append(members)
                drawn.append(rng.choice(members, target - len(members), replace=True))
        return np.concatenate(drawn) if drawn else np.zeros(0, dtype=np.int64)

    def _cluster_centroids(self, state: int) -> np.ndarray:
        from sklearn.cluster import MiniBatchKMeans
        from sklearn.metrics import pairwise_distances_argmin

        assert self.represent is not None
        chosen = []
        target = self.min_count
        for code in np.flatnonzero(self.counts):
            members = self._members[int(code)]
            if len(members) <= target:
                chosen.append(members)
                continue
            # What ClusterCentroids(voting="hard") does: k-means with k = target, then the
            # real sample nearest to each centroid. Samples, not synthetic centroids, so the
            # selection stays a list of indices.
            x = self.represent[members]
            kmeans = MiniBatchKMeans(
                n_clusters=target,
                n_init=1,
                max_iter=20,
                batch_size=max(1024, 3 * target),
                random_state=state,
            ).fit(x)
            chosen.append(members[pairwise_distances_argmin(kmeans.cluster_centers_, x)])
        return np.concatenate(chosen)

    def _smote(self, rng: np.random.Generator) -> Selection:
        positions, partners, steps = [np.arange(len(self.labels))], [], []
        partners.append(np.full(len(self.labels), -1, dtype=np.int64))
        steps.append(np.zeros(len(self.labels), dtype=np.float32))
        for code in np.flatnonzero(self.counts):
            members = self._members[int(code)]
            missing = self.max_count - len(members)
            if missing <= 0:
                continue
            seeds = rng.integers(0, len(members), missing)
            neighbours = self._class_neighbours(int(code), members)
            if neighbours.shape[1] == 0:  # a single sample: nothing to interpolate with
                partner = np.full(missing, -1, dtype=np.int64)
                step = np.zeros(missing, dtype=np.float32)
            else:
                pick = rng.integers(0, neighbours.shape[1], missing)
                partner = members[neighbours[seeds, pick]]
                step = rng.random(missing, dtype=np.float32)
            positions.append(members[seeds])
            partners.append(partner)
            steps.append(step)
        return Selection(np.concatenate(positions), np.concatenate(partners), np.concatenate(steps))

    def _class_neighbours(self, code: int, members: np.ndarray, k: int = 5) -> np.ndarray:
        """Within-class nearest neighbours (positions into ``members``), computed once."""
        if code not in self._neighbours:
            from sklearn.neighbors import NearestNeighbors

            assert self.represent is not None
            k = min(k, len(members) - 1)
            if k < 1:
                self._neighbours[code] = np.zeros((len(members), 0), dtype=np.int64)
            else:
                x = self.represent[members]
                nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
                self._neighbours[code] = nn.kneighbors(x, return_distance=False)[:, 1:]
        return self._neighbours[code]
