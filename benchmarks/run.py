"""Run the issue-4 performance benchmarks (same as ``lfb bench``); see benchmarks/README.md."""

import sys

from lfbtheory.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
