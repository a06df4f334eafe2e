"""A learned-router testbed: a small byte-level MoE language model trained on the Python
standard library, comparing Loss-Free Balancing (arXiv 2408.15664) with the auxiliary balance
loss and Expert Choice under one budget and several seeds. Needs torch (``lfbtheory[testbed]``).

Modules: :mod:`.corpus` (file-level split), :mod:`.balancing` (torch routing, bias lifecycle,
aux loss), :mod:`.model`, :mod:`.train` (one run), :mod:`.run` (grid, statistics, verdicts),
:mod:`.report` (result folder). Importing this package needs torch; `lfb --help` does not.
"""

from lfbtheory.testbed.corpus import Corpus, load_corpus
from lfbtheory.testbed.run import PRESETS, TestbedConfig, preset, run_testbed

__all__ = ["Corpus", "PRESETS", "TestbedConfig", "load_corpus", "preset", "run_testbed"]
