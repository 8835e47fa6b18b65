"""Bad input to ``uniecg-edge export``: one line, exit 2, and no half-written bundle that looks complete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from uniecg_edge.cli import main
from uniecg_edge.commands.export import PRECISION_CHOICES
from uniecg_edge.export import PRECISIONS, ExportOptions, export_bundle, load_bundle
from uniecg_edge.export.parity import ParityError
from uniecg_edge.export.specs.ecg_encoder import EcgEncoderSpec
from uniecg_edge.export.specs.gen_head import GenHeadModule


def _run(*args: str):
    return CliRunner().invoke(main, ["export", *args])


def _error_line(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    assert "Traceback" not in result.output and result.stdout == ""
    return errors[0]


def _only(folder: Path, *names: str) -> None:
    """No staging or backup folder left beside the output."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.fixture()
def checkpoint_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "checkpoint"
    shutil.copytree(tiny_model_dir, copy)
    return copy


def test_a_folder_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    _error_line(_run("--model", str(tmp_path / "empty"), "--out", str(tmp_path / "b")), "not a UniECG checkpoint")
    _error_line(_run("--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "b")), "no such model folder")
    _only(tmp_path, "empty")


@pytest.mark.parametrize("part, fragment", [
    ("tokenizer", "tokenizer/ missing"), ("config.json", "config.json missing"),
    ("tokenizer/tokenizer.json", "no tokenizer files"),
])
def test_a_checkpoint_without_tokenizer_or_config_is_refused(checkpoint_copy: Path, tmp_path: Path, part: str,
                                                             fragment: str) -> None:
    target = checkpoint_copy / part
    if part == "tokenizer/tokenizer.json":  # every tokenizer file gone, the folder left
        for path in (checkpoint_copy / "tokenizer").iterdir():
            path.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    _error_line(_run("--model", str(checkpoint_copy), "--out", str(tmp_path / "b")), fragment)
    assert not (tmp_path / "b").exists()


def test_unknown_or_conflicting_precisions_are_usage_errors(tmp_path: Path) -> None:
    assert PRECISION_CHOICES == PRECISIONS
    _error_line(_run("--precision", "int3", "--out", str(tmp_path / "b")), "int3")
    _error_line(_run("--fp16", "--int8", "--out", str(tmp_path / "b")), "choose one precision")
    assert not (tmp_path / "b").exists()


def test_an_existing_output_folder_is_refused_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    _error_line(_run("--out", str(out)), "output folder exists", "--overwrite")
    assert (out / "keep.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    _error_line(_run("--out", str(tmp_path / "file"), "--overwrite"), "is not a folder")


def test_a_graph_failing_parity_leaves_no_bundle(monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path,
                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(EcgEncoderSpec, "tolerance", 0.0)  # ONNX and torch never agree to the last bit here
    line = _error_line(_run("--model", str(tiny_model_dir), "--out", str(tmp_path / "b")),
                       "graph ecg_encoder", "max |diff|", "tolerance 0")
    assert "real ECG: HR06004" in line
    _only(tmp_path)


def test_a_perturbed_wrapper_fails_parity_and_keeps_the_old_bundle(monkeypatch: pytest.MonkeyPatch,
                                                                   tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    options = ExportOptions(graphs=("gen_head",))
    manifest = export_bundle(out, tiny_model_dir, options)
    assert list(manifest["graphs"]) == ["gen_head"] and manifest["parity"]["greedy_tokens_equal"] is None
    before = (out / "manifest.json").read_bytes()

    original = GenHeadModule.forward

    def perturbed(self, states):  # the exported graph gets +1e-2, the torch reference does not
        result = original(self, states)
        return result + 1e-2 if torch.compiler.is_exporting() else result

    monkeypatch.setattr(GenHeadModule, "forward", perturbed)
    with pytest.raises(ParityError, match=r"graph gen_head \(fp32\) fails parity.*max \|diff\| 0\.01 > tolerance"):
        export_bundle(out, tiny_model_dir, ExportOptions(graphs=("gen_head",), overwrite=True))
    assert (out / "manifest.json").read_bytes() == before  # the old bundle is untouched and still verifies
    assert load_bundle(out).graph_names == ["gen_head"]
    _only(tmp_path, "bundle")

    monkeypatch.setattr(GenHeadModule, "forward", original)
    manifest = export_bundle(out, tiny_model_dir, ExportOptions(graphs=("gen_head",), overwrite=True))
    assert json.loads((out / "manifest.json").read_text())["created_utc"] == manifest["created_utc"]
    _only(tmp_path, "bundle")
