"""Stage 4, encode: KDD feature rows in; the model's float32 matrix (one-hot + log1p + min-max) out.

``spec.FeatureSpec`` is the frozen encoding, fitted on training rows only and saved with a model; ``pca`` is the
preprocessing study's 2-D projection of encoded rows. ``CLASSES`` is re-exported so that ``model`` needs
nothing from ``features`` but this stage and ``common``.
"""

from features.kdd.columns import CLASSES

__all__ = ["CLASSES"]
