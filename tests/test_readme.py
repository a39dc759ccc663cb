"""The README's Python API example runs as written."""

import re
from pathlib import Path


def test_readme_python_example_runs(tmp_path, monkeypatch):
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"## Python API.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    assert (tmp_path / "build_api" / "report.json").exists()
    assert ns["report"]["model"] == "resnet20"
    assert ns["d"].plan_.layer("conv1").och_par == 2
