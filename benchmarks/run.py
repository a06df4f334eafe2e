"""Run the benchmarks from a checkout: ``python benchmarks/run.py [--quick] [--targets 1,4]``.

Same as ``lfb bench``; see benchmarks/README.md.
"""

import sys

from lfbtheory.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
