"""Which unlabelled examples to label next: acquisition functions on arrays, no model, no Ray.

acquisition.py holds the contracts and the ACQUISITIONS registry; the modules imported here
register the acquisitions, so the registry is full whichever module of the package is imported first.
"""

from pipeline.selection import cluster_margin, k_center, uncertainty  # noqa: F401  (they register)
