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


def _readme():
    return (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_main_job_is_the_base_install():
    block = re.search(r"```sh\n(.*?)```", _readme(), re.S).group(1)
    cmds = [ln for ln in block.splitlines() if ln and not ln.startswith("#")]
    assert cmds[0] == "python3 -m pip install -e . && rtlgen build --out build && rtlgen sim build --random 10"
    assert cmds[1] == 'python3 -m pip install -e ".[dev]" && python3 -m pytest -q -n 2 --dist loadfile'


def test_readme_command_table_matches_the_cli():
    """Every command of the README's table exists with every option the row shows, and every command is listed."""
    from rtlgen.cli import main

    rows = re.findall(r"^\| `rtlgen (\w+)([^`]*)`", _readme(), re.M)
    assert {name for name, _ in rows} == set(main.commands), "README table vs rtlgen --help"
    for name, syntax in rows:
        cmd = main.commands[name]
        opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        for o in re.findall(r"--[a-z][a-z0-9-]*", syntax):
            assert o in opts, f"README shows rtlgen {name} {o}; the CLI has {sorted(opts)}"
