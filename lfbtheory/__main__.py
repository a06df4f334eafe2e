import sys

from lfbtheory.cli import main

sys.exit(main())
