"""Optional parts of simipu and the pip extra that installs each (pyproject.toml, ``[project.optional-dependencies]``).

``pip install simipu`` is the core (pre-training, export, inspect, depth probe). ``simipu[synth]`` adds
Open3D for the synthetic-scene generator, ``simipu[notebooks]`` Jupyter, ``simipu[wandb]`` Weights & Biases
logging (``train.logger=wandb``), ``simipu[dev]`` the test tools.
Code that needs an optional package raises :class:`MissingExtraError`, whose one-line message names the
extra; the CLI prints it and exits with code 2.
"""
from __future__ import annotations

EXTRAS = {"open3d": "synth", "libusb_package": "synth", "jupyterlab": "notebooks", "ipywidgets": "notebooks",
          "wandb": "wandb"}


class MissingExtraError(ImportError):
    """An optional package is not installed; the message says which extra installs it."""


def missing_extra(module: str, purpose: str) -> MissingExtraError:
    """The error for ``purpose`` (e.g. "simipu synth") lacking ``module``."""
    return MissingExtraError(f"{purpose} needs the Python package '{module}', which is not installed: "
                             f"pip install 'simipu[{EXTRAS[module]}]'")
