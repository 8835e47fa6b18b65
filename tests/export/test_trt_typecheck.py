"""The TensorRT code type-checks against ``tensorrt-stubs`` (the real library cannot be installed here).

tensorrt-stubs 10.13.0.35.1 cannot be used by mypy as installed: its ``tensorrt/`` folder has no ``py.typed``
(mypy skips it, so every ``trt.*`` is ``Any``), ``tensorrt_bindings/tensorrt.pyi`` has syntax errors (parameters
named ``in``, a parameter without default after defaulted ones) and a module-level ``bool: DataType`` that
shadows the builtin in every annotation. The test therefore copies the stubs, repairs exactly those three things,
puts the copy on MYPYPATH, and checks (1) our modules pass and (2) a file with deliberate API misuse fails, which
proves the stubs are in force. Install with ``pip install --no-deps tensorrt-stubs==10.13.0.35.1`` (its
metadata requires the real ``tensorrt`` wheel, which needs NVIDIA's index).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKED = ["uniecg_edge/export/trt", "uniecg_edge/commands/build_engines.py"]
MYPY_CONFIG = """\
[mypy]
python_version = 3.10
ignore_missing_imports = True
[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]
ignore_errors = True
[mypy-torch,torch.*,onnx,onnx.*,onnxruntime,onnxruntime.*,transformers,transformers.*]
follow_imports = skip
"""
MISUSE = """\
import tensorrt as trt

def misuse(config: trt.IBuilderConfig, builder: trt.Builder) -> None:
    config.set_flag("FP16")
    builder.create_network(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    trt.BuilderFlag.FP17
"""


def _split_params(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def _repair_def(line: str) -> str:
    match = re.match(r"^(\s*def \w+\()(.*)(\)\s*->.*)$", line)
    if match is None:
        return line
    params, seen_default = [], False
    for param in _split_params(match.group(2)):
        stripped = param.strip()
        if stripped.startswith("*"):
            seen_default = False
        elif "=" in stripped:
            seen_default = True
        elif seen_default and stripped:
            param += " = ..."
        params.append(re.sub(r"^(\s*)in(\s*:)", r"\1in_\2", param))
    return match.group(1) + ",".join(params) + match.group(3)


def repaired_stubs(target: Path) -> Path:
    dist = importlib.metadata.distribution("tensorrt-stubs")
    for file in dist.files or []:
        if file.suffix == ".pyi" and file.parts[0] in ("tensorrt", "tensorrt_bindings"):
            text = Path(str(dist.locate_file(file))).read_text()
            lines = [_repair_def(line) for line in text.splitlines() if not line.startswith("bool: ")]
            out = target / Path(*file.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(lines) + "\n")
    return target


@pytest.mark.skipif(importlib.util.find_spec("tensorrt_stubs") is None,
                    reason="tensorrt-stubs not installed (pip install --no-deps tensorrt-stubs==10.13.0.35.1)")
def test_tensorrt_code_type_checks_against_stubs(tmp_path: Path) -> None:
    stubs = repaired_stubs(tmp_path / "stubs")
    assert (stubs / "tensorrt" / "__init__.pyi").is_file()
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    misuse = tmp_path / "misuse.py"
    misuse.write_text(MISUSE)
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(tmp_path / "mypy.ini"), "--cache-dir",
         str(tmp_path / "cache"), "--no-error-summary", *CHECKED, str(misuse)],
        cwd=REPO, capture_output=True, text=True, timeout=240, env={**os.environ, "MYPYPATH": str(stubs)},
    )
    errors = [line for line in run.stdout.splitlines() if ": error:" in line]
    ours = [line for line in errors if not line.startswith(str(misuse))]
    assert ours == [], run.stdout
    misuse_lines = {int(line.split(":")[1]) for line in errors if line.startswith(str(misuse))}
    assert misuse_lines == {4, 5, 6}, run.stdout + run.stderr  # each misuse caught: the stubs are in force
