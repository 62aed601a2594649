"""Quick mode: ``SIMIPU_QUICK=1`` (set by the test suite) shrinks long notebook cells to seconds."""
import os

QUICK = os.environ.get("SIMIPU_QUICK", "0") not in ("", "0", "false", "False")


def pick(full, quick):
    """``full`` normally, ``quick`` under ``SIMIPU_QUICK=1``: ``steps = pick(300, 5)``."""
    return quick if QUICK else full
