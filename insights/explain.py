"""Exact per-feature contributions to a gradient-boosting model's log-odds, one customer at a time.

For one tree, a sample's prediction is the value of the leaf it lands in. Give every node the
*expected* value of the tree below it (the leaves' values weighted by their share of training
samples, ``tree_.weighted_n_node_samples``); walking from the root to the leaf, each split moves
the expectation from the parent's to the child's, and that step is credited to the parent's split
feature. The steps telescope: root expectation + Σ steps = leaf value, exactly. Summed over the
boosted trees (each scaled by the learning rate), plus the initial log-odds (the training prior),
the contributions add up to ``decision_function``, the raw log-odds, to floating-point precision.

The expectations are recomputed from the leaves on purpose: scikit-learn's gradient boosting fits
each tree to the loss gradients, so ``tree_.value`` of an internal node is the mean *gradient* of
its samples, while the leaves hold the line-search (Newton) updates actually added to the score.
Internal values are not the raw-score expectations: the sum would still telescope to the leaf, but
the bias would not be the mean training score and the effects would not average out to zero.

``Forest`` stacks all trees into padded arrays and walks them together, vectorised over samples
and trees (a per-tree ``decision_path`` costs ~0.1 ms of input checks per tree and call).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Forest", "contributions", "init_log_odds"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def init_log_odds(model: Any) -> float:
    """The raw score every prediction starts from: the log-odds of the training prior."""
    prior = float(model.init_.class_prior_[1])
    return float(np.log(prior / (1.0 - prior)))


@dataclass(frozen=True)
class Forest:
    """The boosted trees as ``(trees, nodes)`` arrays, with each node's step from its parent."""

    left: IntArray
    right: IntArray
    feature: IntArray
    threshold: FloatArray
    step: FloatArray
    """E[node] − E[parent], times the learning rate (0 at the roots and the padding)."""
    step_feature: IntArray
    """The parent's split feature, which the step is credited to."""
    bias: float
    """Initial log-odds + learning rate × Σ E[root]."""
    depth: int

    @classmethod
    def of(cls, model: Any) -> Forest:
        """Stack a fitted binary ``GradientBoostingClassifier``'s trees."""
        trees = [estimator.tree_ for estimator in model.estimators_[:, 0]]
        width = max(tree.node_count for tree in trees)
        shape = (len(trees), width)
        left, right = np.full(shape, -1, dtype=np.int64), np.full(shape, -1, dtype=np.int64)
        feature, step_feature = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
        threshold, step = np.zeros(shape), np.zeros(shape)
        rate = float(model.learning_rate)
        bias = init_log_odds(model)
        for t, tree in enumerate(trees):
            count = tree.node_count
            expected = _expectations(tree)
            left[t, :count], right[t, :count] = tree.children_left, tree.children_right
            feature[t, :count], threshold[t, :count] = np.maximum(tree.feature, 0), tree.threshold
            for children in (tree.children_left, tree.children_right):
                parents = np.flatnonzero(children != -1)
                step[t, children[parents]] = rate * (expected[children[parents]] - expected[parents])
                step_feature[t, children[parents]] = tree.feature[parents]
            bias += rate * float(expected[0])
        depth = max(int(estimator.get_depth()) for estimator in model.estimators_[:, 0])
        return cls(left, right, feature, threshold, step, step_feature, bias, depth)

    def contributions(self, X: FloatArray, n_features: int) -> tuple[FloatArray, FloatArray]:
        """Per-feature contributions and the bias of each row of ``X`` (see ``contributions``)."""
        # The trees compare float32 inputs with float64 thresholds: do exactly that.
        values = np.asarray(X, dtype=np.float32).astype(np.float64)
        rows = np.arange(values.shape[0])[:, None]
        trees = np.arange(self.left.shape[0])[None, :]
        node = np.zeros((values.shape[0], self.left.shape[0]), dtype=np.int64)
        effects = np.zeros((values.shape[0], n_features))
        for _ in range(self.depth):
            inner = self.left[trees, node] != -1
            goes_left = values[rows, self.feature[trees, node]] <= self.threshold[trees, node]
            node = np.where(inner, np.where(goes_left, self.left[trees, node], self.right[trees, node]), node)
            moved = np.where(inner, self.step[trees, node], 0.0)
            np.add.at(effects, (np.broadcast_to(rows, node.shape), self.step_feature[trees, node]), moved)
        return effects, np.full(values.shape[0], self.bias)


def contributions(model: Any, X: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-feature log-odds contributions of a fitted binary ``GradientBoostingClassifier``.

    Args:
        model: The fitted classifier (binary, default ``init``).
        X: Samples, shape ``(n, n_features)``.

    Returns:
        ``(effects, bias)``: ``effects[i, j]`` is feature ``j``'s contribution for sample ``i``, and
        ``effects.sum(axis=1) + bias == model.decision_function(X)``.
    """
    return Forest.of(model).contributions(X, int(model.n_features_in_))


def _expectations(tree: Any) -> FloatArray:
    """Each node's expected leaf value, weighted by ``weighted_n_node_samples``."""
    left, right = tree.children_left, tree.children_right
    weight = tree.weighted_n_node_samples
    expected = np.array(tree.value[:, 0, 0], dtype=np.float64)
    # Children always have larger ids than their parent (depth-first build), so one reverse pass
    # computes every internal node from finished children.
    for node in range(tree.node_count - 1, -1, -1):
        if left[node] != -1:
            a, b = left[node], right[node]
            expected[node] = (weight[a] * expected[a] + weight[b] * expected[b]) / (weight[a] + weight[b])
    return expected
