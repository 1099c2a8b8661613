"""The README is the operator's manual: every variable the settings read must be documented there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_environment_variable_is_documented_in_the_readme() -> None:
    source = (ROOT / "config" / "settings.py").read_text()
    variables = set(re.findall(r'"((?:SOULSEER|WEBRTC|STRIPE|DATABASE|REDIS)_[A-Z_]+)"', source))
    assert variables, "no variables found: did the settings module move?"
    readme = (ROOT / "README.md").read_text()
    missing = sorted(v for v in variables if f"`{v}`" not in readme)
    assert not missing, f"undocumented in README.md: {missing}"
