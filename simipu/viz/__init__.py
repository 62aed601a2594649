"""Pictures for the notebooks and the CLI. Plotting lives here, never in the model code.

``curves``: training curves. ``clouds``: point clouds, sampling and neighbourhoods. ``matches``:
projections and point-to-pixel / point-to-point match inspection (also behind ``simipu inspect``).
"""
from .curves import plot_training_curves  # noqa: F401
