"""README's set-up commands: exactly two, and CI runs the test one verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)
    assert len(commands) == 2
    assert "pytest" in commands[1] and "pytest" not in commands[0]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci_lines


def test_the_tour_code_runs():
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A short tour", 1)[1]
    blocks = re.findall(r"```python\n(.*?)\n```", tour, flags=re.S)
    runnable = [b for b in blocks if "make_my_router" not in b]
    assert len(runnable) >= 2
    namespace: dict = {}
    for block in runnable:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["report"].summary()["T"] == 500
    assert (
        namespace["lfb"]
        .certify(namespace["scores"], 2, namespace["opt"].assignment, namespace["opt"].bias)
        .ok
    )
