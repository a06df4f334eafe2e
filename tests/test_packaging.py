"""What a user installs: the wheel's files and the version the package reports."""

import importlib.metadata
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.version import Version

import lfbtheory

ROOT = Path(__file__).resolve().parents[1]
# Not copied into the build folder: environments, caches and outputs (none is package source).
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "results",
    "site",
    "*.egg-info",
    "__pycache__",
    ".hypothesis",
    ".*_cache",
)


def test_version_is_the_installed_distributions_version():
    installed = importlib.metadata.version("lfbtheory")
    assert lfbtheory.__version__ == installed
    assert str(Version(installed)) == installed  # PEP 440, normalised


def test_the_wheel_ships_py_typed_and_the_package_data_and_nothing_else(tmp_path):
    # Built from a copy without git metadata, so only pyproject's package-data decides what
    # ships (setuptools-scm's git file finder would add every tracked file on its own).
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCE)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "dist").glob("lfbtheory-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lfbtheory/py.typed" in names
    assert "lfbtheory/_engine/tuning.json" in names
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "lfbtheory" / "data").glob("*.npz")}
    assert shipped and shipped <= names
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"lfbtheory"}
