"""The command line: help lists the commands, the demo prints its table and exits 0."""

import subprocess
import sys

from lfbtheory.cli import main


def test_help_lists_the_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "demo" in out


def test_demo_runs_and_its_certificate_passes(capsys):
    assert main(["demo", "--n", "128", "--experts", "8", "--k", "2"]) == 0
    out = capsys.readouterr().out
    assert "exact balanced optimum" in out and "certificate passes" in out


def test_bad_arguments_exit_2_with_a_message(capsys):
    assert main(["demo", "--n", "10", "--experts", "4", "--k", "9"]) == 2
    assert "k must be in [1, E=4]" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "lfbtheory", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "demo" in out
