"""Pictures for the notebooks and the CLI. Plotting lives here, never in the model code.

``curves``: training curves. ``clouds``: point clouds, sampling and neighbourhoods. ``matches``:
projections and point-to-pixel / point-to-point match inspection (also behind ``simipu inspect``).
"""
from .curves import plot_training_curves  # noqa: F401
from .clouds import plot_neighbourhoods, plot_sa_stages, plot_sampling_coverage, plot_two_views  # noqa: F401
from .matches import cell_majority, inspect_frame, plot_point_matches, plot_point_to_pixel, plotly_point_to_pixel, wrong_matches  # noqa: F401
