"""The workflow snippet of docs/structure.md runs as written."""

import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "structure.md"


@pytest.mark.slow
@pytest.mark.tf_only  # the snippet is backend-agnostic; one backend keeps CI time down
def test_the_documented_mobilenet_v2_workflow_runs(tmp_path, monkeypatch):
    snippet = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, str(DOC), "exec"), {})
    assert (tmp_path / "mobilenetv2_small.keras").exists()
