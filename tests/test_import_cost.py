"""``import lfbtheory`` loads nothing heavy: modules that cost import time load where used.

Time itself is measured in ``benchmarks/`` (``lfb bench --targets 6``), never asserted here;
this checks the cause instead: which modules a fresh ``import lfbtheory`` has loaded.
"""

import subprocess
import sys

# Each is needed by a few functions only and is slow to import (lfb bench --targets 6 measures).
DEFERRED = (
    "scipy.stats",
    "scipy.special",
    "scipy.optimize",
    "cvxpy",
    "matplotlib",
    "sympy",
    "torch",
    "pandas",
)


def test_import_lfbtheory_loads_no_deferred_module():
    probe = f"import sys, lfbtheory; print(' '.join(m for m in {DEFERRED!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []


def test_the_probe_sees_a_module_that_is_loaded():
    # the same probe must report a deferred module once something imports it
    probe = "import sys, lfbtheory, scipy.stats; print('scipy.stats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
