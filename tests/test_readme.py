"""The README's API snippets run as written, one after the other (slow: they plan at full
budget on the shipped Two-Room model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_the_api_snippets_run_in_order(capsys) -> None:
    text = README.read_text()
    api = text.split("## The API in 15 lines", 1)[1].split("## Bring your data and models", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", api, re.S)
    assert len(blocks) == 3  # the loop, the guardrail, the robot loop
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)
    assert "success: True" in capsys.readouterr().out
    assert namespace["controller"].plans  # the robot loop planned
