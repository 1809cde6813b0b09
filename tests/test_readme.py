"""The README's code blocks run as written, in order, in one namespace — so the quickstart never
rots."""
from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python[ \t]*\n(.*?)^```[ \t]*$", text, flags=re.DOTALL | re.MULTILINE)


def test_readme_has_a_quickstart():
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python blocks"
    assert any("import unfold" in b for b in blocks)


def test_readme_python_blocks_run_in_order():
    blocks = _python_blocks(README.read_text(encoding="utf-8"))
    namespace: dict = {"__name__": "readme"}
    ran = 0
    for i, block in enumerate(blocks, start=1):
        code = compile(block, f"README.md, python block {i}", "exec")
        exec(code, namespace)          # an exception here names the block it came from
        ran += 1
    assert ran == len(blocks) and "uf" in namespace     # (the blocks' own asserts ran too)
