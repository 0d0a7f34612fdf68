"""The project's promises about itself: the README's commands, the Space front matter, the pins."""

from __future__ import annotations

import re
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n"), "README.md must open with the Space's front matter"
    block = text[4 : text.index("\n---\n", 4)]
    pairs = (line.split(":", 1) for line in block.splitlines() if ":" in line)
    return {k.strip(): v.strip().strip('"') for k, v in pairs}


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if m:
            found[m[1].lower()] = m[2]
    return found


def test_space_front_matter_matches_requirements_and_the_running_python():
    meta = front_matter()
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == pins()["gradio"] == version("gradio")
    assert (ROOT / meta["app_file"]).is_file()
    # The Space runs the Python ZeroGPU supports (3.12.12, tests/test_zerogpu.py checks the
    # list); Docker and this venv run 3.11. Both lie in pyproject's range, and requirements.txt
    # installs on both (checked by hand on 3.12.1: README, "Host it for free on a ZeroGPU Space").
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert meta["python_version"].startswith(("3.12.", "3.10."))
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^FROM python:{re.escape(running)}\b", dockerfile, re.M)


def test_installed_packages_are_the_pinned_ones():
    for name, pinned in pins().items():
        assert version(name) == pinned, f"{name} {version(name)} is installed, {pinned} is pinned"


def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert "./run.sh app" in readme and "./run.sh test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^\./run\.sh test\b", ci, re.M)
