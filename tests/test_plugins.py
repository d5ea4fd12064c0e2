"""Targets are plug-ins: a package dropped on the path brings its profile, arithmetic, file format and executor
to every command, and the core names no target."""

import ast
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

import pytest

from delaynir import plugins
from delaynir.cli import main
from delaynir.export import executors
from delaynir.ir.graph_io import load_graph

REPO = Path(__file__).resolve().parent.parent

#: A target package as a third party would ship it: an installed distribution (its dist-info names the
#: entry point) whose package holds a profile, an arithmetic, a file format and the executor that runs it.
TOY_FILES = {
    "toychip/__init__.py": """
        from delaynir.export.executors import TARGET_ARITHMETIC, Executor, FileFormat
        from delaynir.plugins import TargetPlugin

        TOY = FileFormat("toy", "model.toy", "toychip.files:write", "the toy chip's file")
        PLUGIN = TargetPlugin(
            name="toychip",
            description="a toy chip for the plug-in tests",
            package=__name__,
            profiles=("toychip.toml",),
            arithmetics={"toy-float64": "toychip.files:ARITHMETIC"},
            formats=(TOY,),
            executors=(Executor("toysim", TOY, "toychip.files", TARGET_ARITHMETIC, "pip install toychip",
                                "toy-float64", other_arithmetics=False),),
        )
    """,
    "toychip/files.py": '''
        """The toy chip's file is a DelayGraph file with a header line; its simulator is the reference's."""
        from delaynir.ir.graph_io import load_graph, save_graph
        from delaynir.numerics.number_formats import Arithmetic
        from delaynir.reference.executor import ReferenceModel

        ARITHMETIC = Arithmetic("toy-float64")
        HEADER = b"TOYCHIP1"

        def write(graph, path, overwrite=False):
            import os, pathlib
            path = pathlib.Path(path)
            if path.exists() and not overwrite:
                raise FileExistsError(path)
            inner = path.with_name(path.name + ".inner.h5")
            save_graph(graph, inner)
            path.write_bytes(HEADER + inner.read_bytes())
            os.remove(inner)
            return path

        def load(path):
            import pathlib, tempfile
            data = pathlib.Path(path).read_bytes()
            assert data.startswith(HEADER), "not a toy file"
            with tempfile.TemporaryDirectory() as tmp:
                inner = pathlib.Path(tmp) / "g.h5"
                inner.write_bytes(data[len(HEADER):])
                return ReferenceModel(load_graph(inner))
    ''',
    "toychip/toychip.toml": """
        name = "toychip"
        description = "a toy chip: 8-bit weights, delays up to 30 steps"
        format_version = 1

        [limits]
        weight_bits = { value = 8, source = "the toy datasheet", confirmed = true }
        max_delay = { value = 30, source = "the toy datasheet", confirmed = true }
        arithmetic = { value = "toy-float64", source = "the toy datasheet", confirmed = true }
    """,
    "toychip-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: toychip\nVersion: 0.1\n",
    "toychip-0.1.dist-info/entry_points.txt": "[delaynir.targets]\ntoychip = toychip:PLUGIN\n",
}


@pytest.fixture
def toy_site(tmp_path, monkeypatch):
    """A folder holding the installed toy target, on sys.path (and PYTHONPATH) for this test only."""
    site = tmp_path / "site"
    for name, text in TOY_FILES.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(textwrap.dedent(text).lstrip())
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    plugins.rediscover()
    yield site
    monkeypatch.undo()
    plugins.rediscover()


def _json(capsys, *argv):
    assert main(["-q", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_target_package_on_the_path_reaches_every_command(toy_site, small_run, tmp_path, capsys):
    assert "toychip" in [p["name"] for p in _json(capsys, "targets")]
    graph = tmp_path / "g.h5"
    _json(capsys, "compile", str(small_run), "--target", "toychip", "--out", str(graph))
    assert load_graph(graph).arithmetic == "toy-float64"

    exported = _json(capsys, "export", str(graph), "--format", "toy", "-o", str(tmp_path / "g.toy"))
    assert (tmp_path / "g.toy").read_bytes().startswith(b"TOYCHIP1") and exported["format"] == "toy"

    test_data = small_run.parent / "data" / "test.h5"
    report = _json(capsys, "verify", str(graph), "--data", str(test_data), "--sims", "reference,toysim")
    assert report["passed"] and list(report["simulators"]) == ["toysim"]

    manifest = _json(capsys, "bundle", str(small_run), "--target", "toychip", "--out", str(tmp_path / "b"))
    assert "model.toy" in manifest["files"] and manifest["verification"]["toysim"]["status"] == "exact"
    assert main(["-q", "bundle", "--check", str(tmp_path / "b")]) == 0


def test_the_toy_simulator_runs_only_graphs_in_its_arithmetic(toy_site, small_run, tmp_path):
    float_graph = tmp_path / "f.h5"
    assert main(["-q", "compile", str(small_run), "--target", "int8", "--out", str(float_graph)]) == 0
    assert "toysim" in executors.names() and "toysim" not in executors.external(load_graph(float_graph))


def test_an_installed_target_is_found_by_a_fresh_interpreter_and_gone_without_it(toy_site):
    def listed(env):
        out = subprocess.run(
            [sys.executable, "-m", "delaynir", "-q", "targets", "--json"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout
        return [p["name"] for p in json.loads(out)]

    assert "toychip" in listed(dict(os.environ))
    assert "toychip" not in listed({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})


def test_two_targets_claiming_one_name_are_refused(toy_site):
    toy = next(p for p in plugins.plugins() if p.name == "toychip")
    with pytest.raises(plugins.PluginError, match="'toychip' is already registered"):
        plugins.register(toy)


def test_a_package_whose_plugin_is_not_a_target_plugin_is_named(toy_site):
    (toy_site / "toychip-0.1.dist-info" / "entry_points.txt").write_text("[delaynir.targets]\ntoy = toychip:TOY\n")
    plugins.rediscover()
    with pytest.raises(plugins.PluginError, match="toychip:TOY: PLUGIN is a FileFormat"):
        plugins.plugins()


# --------------------------------------------------------------------------- the core names no target


def _code_tokens(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every token of ``path`` that is code: comments and docstrings left out."""
    source = path.read_text(encoding="utf-8")
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.add(first.lineno)
    return [
        (tok.start[0], tok.string)
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE)
        and not (tok.type == tokenize.STRING and tok.start[0] in docstrings)
    ]


def _names_of_targets() -> set[str]:
    """Every name a target package brings: its own, its package's, its profiles', arithmetics', formats' and
    executors' (those are the words the core must not spell)."""
    names = set()
    for p in plugins.plugins():
        names |= {p.name, p.package.rsplit(".", 1)[-1], *p.profile_files(), *p.arithmetics}
        names |= {f.name for f in p.formats} | {e.name for e in p.executors} | {c.name for c in p.tool_checks}
    return {n.lower() for n in names}


def test_the_core_names_no_target_in_its_code():
    names = _names_of_targets()
    assert {"loihi2", "lava", "netx", "loihi2-fixed", "nest", "spynnaker"} <= names  # seen, so the test bites
    found = [
        f"{path.relative_to(REPO)}:{line}: {text}"
        for path in sorted((REPO / "delaynir").rglob("*.py"))
        for line, text in _code_tokens(path)
        if any(re.search(rf"\b{re.escape(name)}\b", text.lower()) for name in names)  # words: "nested" is no "nest"
    ]
    assert not found, "the core names a target (move it into the target's package):\n" + "\n".join(found)


def test_the_name_check_sees_a_target_named_in_code(tmp_path):
    module = tmp_path / "m.py"
    module.write_text('"""Docstrings may name loihi2 as an example."""\n# so may comments: lava\nCHIP = "loihi2"\n')
    assert [text for _, text in _code_tokens(module) if "loihi2" in text] == ['"loihi2"']


def test_the_targets_command_lists_what_each_target_package_brings(toy_site, capsys):
    assert main(["-q", "targets"]) == 0
    text = capsys.readouterr().out
    toy = text[text.index("  toychip: a toy chip for the plug-in tests (toychip)") :]
    for line in ("profiles: toychip", "arithmetics: toy-float64", "export formats: toy", "executors: toysim"):
        assert f"    {line}\n" in toy, toy
    loihi2 = text[text.index("  loihi2: ") :]
    assert f"lava environment: {REPO / 'targets' / 'loihi2' / 'build_lava_env.sh'}" in loihi2


def test_a_target_reusing_a_name_the_core_or_another_target_has_is_refused_naming_both():
    from delaynir.export.executors import NIR, Executor

    clash = plugins.TargetPlugin(
        "test-clash",
        "-",
        "delaynir.targets.loihi2",
        profiles=("loihi2.toml",),
        executors=(Executor("norse", NIR, "delaynir.converters.norse", executors.FLOAT_GRAPH, "-"),),
    )
    plugins.register(clash)
    try:
        with pytest.raises(plugins.PluginError, match="'norse' is registered twice, by delaynir and target test-clash"):
            executors.names()
        with pytest.raises(plugins.PluginError, match="'loihi2' is registered twice, by loihi2 and test-clash"):
            plugins.profile_files()
    finally:
        plugins.unregister("test-clash")
    assert executors.names().count("norse") == 1
