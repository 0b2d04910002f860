"""Every ```python block of README.md runs, and so does every block of docs/*.md marked runnable.

A docs block is marked by the line ``<!-- runnable -->`` right before its opening fence. Blocks run in a
fresh namespace each, in a temporary working directory, on the TensorFlow backend (the README's workflow
exports a SavedModel).
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)
MARKED = re.compile(r"^<!-- runnable -->\n```python\n(.*?)^```$", re.M | re.S)


def blocks(path, pattern):
    text = path.read_text()
    return [(f"{path.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 1}", m.group(1)) for m in pattern.finditer(text)]


README_BLOCKS = blocks(ROOT / "README.md", FENCE)
DOCS_BLOCKS = [b for path in sorted((ROOT / "docs").glob("*.md")) for b in blocks(path, MARKED)]


def test_the_readme_has_its_examples_and_stays_short():
    text = (ROOT / "README.md").read_text()
    assert len(README_BLOCKS) >= 2
    assert len(text.splitlines()) <= 250
    # Papers are named by authors and year, never by internal labels; links stay inside the repository.
    assert not re.search(r"seed 00\d|issue \d|\.\./shared", text)


@pytest.mark.slow
@pytest.mark.tf_only
@pytest.mark.parametrize("where, code", README_BLOCKS + DOCS_BLOCKS, ids=[w for w, _ in README_BLOCKS + DOCS_BLOCKS])
def test_code_block_runs(where, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, where, "exec"), {"__name__": "__readme__"})
