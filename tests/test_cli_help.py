"""--help of the model folders' entry points lists every option with this model's recipe value as the default."""
import pytest
from conftest import run_cli


@pytest.mark.parametrize("model, entry, recipe", [
    ("resnext50_32x4d", "train.py", "--epoch_size (int, default 150)"),
    ("resnext152_64x4d", "eval.py", "--batch_size (int, default 128)"),
    ("resnest50", "export.py", "--drop_rate (float, default 0.2)"),
])
def test_help_shows_the_models_recipe(model, entry, recipe):
    result = run_cli([f"{model}/{entry}", "--help"])
    assert result.returncode == 0, result.stderr
    assert f"--arch (str, default '{model}')" in result.stdout
    assert recipe in result.stdout
    assert "--lr_scheduler" in result.stdout and "--label_smooth_factor" in result.stdout
