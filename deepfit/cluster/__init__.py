"""Clustering: mean shift in torch, batched on any device, with exact or approximate neighbour search.

Example:
    >>> from deepfit.cluster import MeanShift, plot_clusters
    >>> ms = MeanShift(bandwidth=2.5).fit(X)               # X: (n_samples, n_features)
    >>> plot_clusters(X, ms.labels_, ms.cluster_centers_, fname="clusters.png")
"""
from .bandwidth import bin_seeds, estimate_bandwidth
from .checks import ClusterInputError, check_points
from .grid import GridRows
from .meanshift import MeanShift, auto_neighbors, climb, mean_shift_step, merge_modes, nearest_center
from .neighbors import AllPoints, BoxTree, LSHNeighbors, TreeNeighbors, kernel_weights, sqdist
from .plot import plot_clusters

__all__ = ["MeanShift", "auto_neighbors", "estimate_bandwidth", "bin_seeds", "ClusterInputError", "check_points", "climb",
           "mean_shift_step", "merge_modes", "nearest_center", "AllPoints", "GridRows", "BoxTree", "TreeNeighbors", "LSHNeighbors",
           "kernel_weights", "sqdist", "plot_clusters"]
