"""``uniecg-edge export`` on the default model, then the bundle it wrote: manifest, checksums, tamper refusal,
every graph against torch on real ECGs at batch 1 and 2, and greedy decoding through ONNX vs torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from uniecg_edge.cli import main
from uniecg_edge.data import EXAMPLE_RECORD
from uniecg_edge.errors import BundleError, InputError
from uniecg_edge.export import GRAPH_ORDER, load_bundle
from uniecg_edge.export.bundle import sha256_file
from uniecg_edge.export.parity import RealInputs, check_graph, check_greedy
from uniecg_edge.export.spec import graph_specs
from uniecg_edge.model.uniecg import UniEcgModel, checkpoint_sha256
from uniecg_edge.wfdb_io import read_record

CINC_RECORD = "cinc2021/JS20000.hea"


@pytest.fixture(scope="module")
def cli_export(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    out = tmp_path_factory.mktemp("export") / "bundle"
    result = CliRunner().invoke(main, ["export", "--out", str(out), "--json"])  # no --model: the default model
    assert result.exit_code == 0, result.output
    return out, result


@pytest.fixture(scope="module")
def bundle_dir(cli_export) -> Path:
    return cli_export[0]


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> UniEcgModel:
    return UniEcgModel.from_pretrained(tiny_model_dir)


def test_cli_export_reports_every_graph_and_leaves_only_the_bundle(cli_export) -> None:
    out, result = cli_export
    report = json.loads(result.stdout)
    assert [row["graph"] for row in report["graphs"]] == list(GRAPH_ORDER)
    assert all(row["passed"] and row["precision"] == "fp32" for row in report["graphs"])
    assert all(row["max_abs_diff"] <= row["tolerance"] for row in report["graphs"])
    assert report["parity"]["greedy_tokens_equal"] is True and report["parity"]["records"] == ["HR06004"]
    for k, name in enumerate(GRAPH_ORDER, 1):  # per-graph progress on stderr
        assert f"[{k}/{len(GRAPH_ORDER)}] {name}:" in result.stderr
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundle"]  # no staging folder left behind
    for name in GRAPH_ORDER:
        assert (out / f"{name}.onnx").is_file()
    assert (out / "tokenizer" / "tokenizer.json").is_file() and (out / "scheduler.json").is_file()


def test_manifest_lists_every_file_with_its_sha256(bundle_dir: Path, tiny_model_dir: Path) -> None:
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    assert manifest["format"] == "uniecg-edge-bundle" and manifest["format_version"] == 1
    assert manifest["precision"] == "fp32" and manifest["opset"] == 18
    assert manifest["source_model"]["sha256"] == checkpoint_sha256(tiny_model_dir)
    assert manifest["source_model"]["trained"] is False and manifest["licence"]
    assert set(manifest["tool_versions"]) >= {"python", "torch", "transformers", "onnx", "onnxscript", "onnxruntime"}
    on_disk = sorted(p.relative_to(bundle_dir).as_posix() for p in bundle_dir.rglob("*") if p.is_file())
    assert sorted(manifest["files"]) == [f for f in on_disk if f != "manifest.json"]
    for rel, digest in manifest["files"].items():
        assert sha256_file(bundle_dir / rel) == digest
    for name, graph in manifest["graphs"].items():
        assert graph["file"] == f"{name}.onnx" and graph["data_files"] == []
        assert graph["size_bytes"] == (bundle_dir / graph["file"]).stat().st_size
        assert graph["precision"] == "fp32" and graph["opset"] == 18 and graph["export_s"] > 0
        assert {"passed", "max_abs_diff", "tolerance", "compared_with", "inputs"} <= set(graph["parity"])
        assert graph["parity"]["inputs"] == "real ECG: HR06004"
        assert all(s["shape"][0] == "batch" for s in graph["inputs"] + graph["outputs"])
        for entry in graph["profile"].values():
            assert entry["min"][0] == 1 and entry["max"][0] >= entry["opt"][0] >= 1
    decoder = manifest["graphs"]["decoder"]
    assert decoder["profile"]["past_key_values.0.key"]["min"][2] == 0  # prefill with an empty past
    assert [s["name"] for s in decoder["outputs"]][:3] == ["logits", "hidden_states", "present.0.key"]
    terms = manifest["graphs"]["unet_cond"]["outputs"]
    assert terms[0]["name"] == "cond_term.0" and terms[0]["shape"][1] == 128  # beat clock: position-dependent
    assert [s["shape"] for s in terms] == [s["shape"] for s in manifest["graphs"]["unet"]["inputs"][2:]]


def test_runtime_config_has_what_the_runtime_needs(bundle_dir: Path, model: UniEcgModel) -> None:
    config = load_bundle(bundle_dir).config
    assert config["ecg_token_id"] == model.ecg_token_id and config["gen_token_ids"] == model.gen_token_ids
    assert config["eos_token_id"] == model.eos_token_id and config["bos_token_id"] == model.tokenizer.bos_token_id
    assert config["num_layers"] == model.llm.config.num_hidden_layers and config["hidden_size"] == 64
    assert config["num_ecg_embeddings"] == model.ecg_encoder.num_tokens
    assert config["num_cond_terms"] == model.unet.config.num_blocks and config["latent_channels"] == 4
    # the untrained model has a beat clock: its condition terms span each block's latent length
    lengths = config["cond_term_lengths"]
    assert lengths == list(model.unet.config.block_lengths()) and lengths[0] == 128
    assert config["fs"] == 500 and config["num_samples"] == 5000 and len(config["leads"]) == 12
    assert config["generator_samples"] == 1024 and config["prompt"]["interpret_template"]
    assert config["trained"] is False and config["grounded"] is model.config.grounded


def test_a_tampered_byte_is_refused_naming_the_file(bundle_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    bundle = load_bundle(copy)
    assert bundle.graph_names == list(GRAPH_ORDER) and len(bundle.sha256()) == 64
    data = bytearray((copy / "decoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (copy / "decoder.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"decoder\.onnx does not match the manifest") as err:
        load_bundle(copy)
    assert "\n" not in str(err.value) and isinstance(err.value, InputError)


def _rewrite_manifest(root: Path, **changes: object) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.update(changes)
    (root / "manifest.json").write_text(json.dumps(manifest))


def _unlist(root: Path, rel: str) -> None:
    files = json.loads((root / "manifest.json").read_text())["files"]
    _rewrite_manifest(root, files={k: v for k, v in files.items() if k != rel})


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "tokenizer" / "tokenizer.json").unlink(), "missing file tokenizer/tokenizer.json"),
    (lambda root: (root / "gen_head.onnx").unlink(), "missing file gen_head.onnx"),
    (lambda root: shutil.copy(root / "unet.onnx", root / "unet2.onnx"), "extra graph file unet2.onnx"),
    (lambda root: (root / "tokenizer" / "added_tokens.json").write_text("{}"),
     "extra file tokenizer/added_tokens.json"),
    (lambda root: _unlist(root, "config.json"), "config.json is not listed"),
    (lambda root: (root / "manifest.json").unlink(), "not an edge bundle"),
    (lambda root: _rewrite_manifest(root, format="something-else"), "unknown format 'something-else'"),
    (lambda root: _rewrite_manifest(root, format_version=2), "format_version 2 is newer"),
    (lambda root: (root / "config.json").write_text("{}"), "config.json does not match the manifest"),
])
def test_an_incomplete_or_foreign_bundle_is_refused(bundle_dir: Path, tmp_path: Path, damage, message: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    damage(copy)
    with pytest.raises(BundleError, match=message) as err:
        load_bundle(copy)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("with_cinc", [False, True], ids=["batch1", "batch2"])
def test_each_graph_matches_torch_on_real_ecgs(bundle_dir: Path, model: UniEcgModel, shared_ecg: Path,
                                               with_cinc: bool) -> None:
    records = [read_record(EXAMPLE_RECORD)] + ([read_record(shared_ecg / CINC_RECORD)] if with_cinc else [])
    real = RealInputs(model, records)
    assert real.ecg.shape == (len(records), 12, 5000) and np.abs(real.ecg).max() > 0.1  # a real signal, in mV
    for spec in graph_specs():
        result = check_graph(spec, model, bundle_dir / spec.file_name, real)
        assert result.passed and result.max_abs_diff <= spec.tolerance
        assert all(case["batch"] == len(records) for case in result.cases)
    decoder_cases = check_graph(graph_specs(["decoder"])[0], model, bundle_dir / "decoder.onnx", real).cases
    assert [c["case"] for c in decoder_cases] == ["prefill, empty past", "decode step with past"]


def test_greedy_decoding_through_onnx_gives_the_torch_tokens(bundle_dir: Path, model: UniEcgModel,
                                                            shared_ecg: Path) -> None:
    bundle = load_bundle(bundle_dir)
    records = [read_record(EXAMPLE_RECORD), read_record(shared_ecg / CINC_RECORD)]
    result = check_greedy(model, bundle_dir, bundle.config, records, num_tokens=24)
    assert result["greedy_tokens_equal"] is True and result["records"] == ["HR06004", "JS20000"]
    assert all(row["equal"] and row["tokens"] > 0 for row in result["per_record"])
