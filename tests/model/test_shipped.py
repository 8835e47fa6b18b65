"""The shipped-model folder: packaging (ship), checksum verification, and the default-model choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from uniecg_edge.errors import BundleError, ConfigError
from uniecg_edge.model import shipped
from uniecg_edge.model.default import MODEL_ENV, UNTRAINED, default_model_dir, untrained_model_dir


@pytest.fixture(scope="module")
def packaged(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from uniecg_edge.training.ship import ship_model

    return ship_model(tiny_model_dir, tmp_path_factory.mktemp("ship") / "model", recipe_command="recipe --seed 0")


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_packaged_folder_verifies_and_loads_as_trained(packaged: Path) -> None:
    from uniecg_edge.model.uniecg import UniEcgModel

    assert shipped.verify_model_folder(packaged) == packaged
    model = UniEcgModel.from_pretrained(packaged)
    assert model.config.trained and model.config.name == shipped.SHIPPED_NAME
    card = (packaged / shipped.CARD_FILE).read_text()
    assert "not for clinical use" in card.lower() and "recipe --seed 0" in card
    listed = shipped.read_sums(packaged)
    assert "config.json" in listed and any(name.endswith(".safetensors") for name in listed)


@pytest.mark.parametrize("damage", ["modified", "added", "removed"])
def test_damaged_folder_is_refused_naming_the_file(packaged: Path, tmp_path: Path, damage: str) -> None:
    folder = _copy(packaged, tmp_path / "m")
    weights = next(folder.rglob("*.safetensors"))
    if damage == "modified":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
        target = weights
    elif damage == "added":
        target = folder / "tokenizer" / "added_tokens.json"
        target.write_text("{}")
    else:
        weights.unlink()
        target = weights
    with pytest.raises(BundleError) as info:
        shipped.verify_model_folder(folder)
    message = str(info.value)
    assert str(target) in message and "\n" not in message


def test_over_budget_model_is_refused(tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from uniecg_edge.training import ship

    monkeypatch.setattr(ship, "STUDENT_MAX_BYTES", 1000)
    with pytest.raises(ConfigError, match="budget"):
        ship.ship_model(tiny_model_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not any(tmp_path.iterdir())  # no half-written folder left


def test_default_model_choice(packaged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_ENV, UNTRAINED)
    assert default_model_dir() == untrained_model_dir()
    monkeypatch.setenv(MODEL_ENV, str(tmp_path))
    assert default_model_dir() == tmp_path
    monkeypatch.delenv(MODEL_ENV)
    models = _copy(packaged, tmp_path / "models" / shipped.SHIPPED_NAME).parent
    monkeypatch.setattr(shipped, "MODELS_DIR", models)
    assert default_model_dir() == models / shipped.SHIPPED_NAME
    (models / shipped.SHIPPED_NAME / "config.json").write_text("{}")
    with pytest.raises(BundleError, match="config.json"):
        default_model_dir()
    monkeypatch.setattr(shipped, "MODELS_DIR", tmp_path / "none")
    assert default_model_dir() == untrained_model_dir()  # a source tree without the trained model


def test_ship_cli_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from uniecg_edge.training.ship import main

    assert main(["--model", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing" in err and "\n" not in err
