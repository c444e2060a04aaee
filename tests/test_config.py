import dataclasses
import subprocess
import sys
import tomllib
from typing import Literal

import pytest

from kerasr.config import (
    ConfigError,
    DataConfig,
    DCGANConfig,
    SRRecipe,
    check,
    load_config,
    load_data_config,
    to_toml,
)


@dataclasses.dataclass(frozen=True)
class Optim:
    lr: float = 2e-4
    milestones: tuple[int, ...] = (200_000,)
    kind: Literal["adam", "sgd"] = "adam"

    def __post_init__(self):
        check(self.lr > 0, f"lr must be > 0. Received: {self.lr}")
        check(self.milestones != (13,), "thirteen is unlucky")


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str = "x"
    batch_size: int = 16
    optim: Optim = Optim()
    note: str | None = None
    weights: dict[str, float] = dataclasses.field(default_factory=dict)


def test_defaults_file_and_overrides(tmp_path):
    assert load_config(Recipe) == Recipe()
    path = tmp_path / "r.toml"
    path.write_text("batch_size = 8\n[optim]\nlr = 1e-3\nmilestones = [10, 20]\n")
    cfg = load_config(Recipe, path, ["optim.kind=sgd", "name=run 1", "optim.lr=5e-4"])
    assert cfg == Recipe("run 1", 8, Optim(5e-4, (10, 20), "sgd"))


def test_round_trip_through_toml(tmp_path):
    cfg = Recipe(batch_size=4, optim=Optim(milestones=(1, 2)))
    path = tmp_path / "r.toml"
    path.write_text(to_toml(cfg))
    assert load_config(Recipe, path) == cfg


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "optim.lrr=1",
            "unknown config key 'optim.lrr'; valid keys in \\[optim\\]: lr, milestones, kind",
        ),
        (
            "batch=1",
            "unknown config key 'batch'; valid keys: name, batch_size, optim, note, weights",
        ),
        ("batch_size=many", "'batch_size' must be an integer"),
        ("optim.kind=rmsprop", "'optim.kind' must be one of 'adam', 'sgd'"),
        ("optim.lr=-1", "^optim.lr must be > 0. Received: -1.0$"),
        ("optim.milestones=[13]", "^\\[optim\\] thirteen is unlucky$"),
        ("optim.milestones=3", "'optim.milestones' must be a list"),
        ("noequals", "override must look like section.key=value"),
    ],
)
def test_bad_values_name_the_problem(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Recipe, overrides=[override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Recipe, tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("batch_size = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(Recipe, tmp_path / "bad.toml")


@pytest.mark.parametrize(
    "cls,override,message",
    [
        # The same optimizer class serves two tables; the error names the one that is wrong.
        (SRRecipe, "d_optim.learning_rate=0", "^d_optim.learning_rate must be > 0. Received: 0"),
        (SRRecipe, "g_optim.beta_2=1", "^g_optim.beta_2 must be in \\[0, 1\\). Received: 1"),
        (SRRecipe, "data.patch_size=30", "^'data.patch_size' must be a positive multiple of"),
        (
            SRRecipe,
            "data.degradation.stage2.blur.kernel_range=[4, 8]",
            "^'data.degradation.stage2.blur.kernel_range' must be two odd sizes",
        ),
        (DCGANConfig, "train.epochs=0", "^train.epochs must be >= 1. Received: 0$"),
        (DCGANConfig, "data.white_border=0", "^data.white_border must be in \\(0, 1\\]"),
        (DCGANConfig, "train.label_smoothing=0.1", "^train.label_smoothing needs loss ="),
    ],
)
def test_post_init_errors_name_their_table(cls, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(cls, overrides=[override])


def test_data_only_file_names_the_data_table(tmp_path):
    with pytest.raises(ConfigError, match="^'data.degradation.usm_radius' must be >= 1"):
        load_data_config(overrides=["degradation.usm_radius=0"])
    assert load_data_config(overrides=["data.patch_size=64"]) == DataConfig(patch_size=64)


def test_typed_values_go_in_unchanged_and_are_checked():
    text = 'a "quoted" \\path\nwith=equals'
    cfg = load_config(Recipe, overrides=["batch_size=2"], values={"name": text, "batch_size": 3})
    assert cfg.name == text and cfg.batch_size == 3
    with pytest.raises(ConfigError, match="'optim.lr' must be a number. Received: 'fast'"):
        load_config(Recipe, values={"optim.lr": "fast"})
    with pytest.raises(ConfigError, match="unknown config key 'optim.rate'"):
        load_config(Recipe, values={"optim.rate": 1.0})


def test_to_toml_escapes_what_toml_requires(tmp_path):
    tricky = 'line\nbreak\ttab "quote" back\\slash \x01\x7f\r\x08\x0c é 漢 🙂'
    cfg = Recipe(name=tricky, note="", weights={"conv5_4": 1.0, 'odd key."x"': 0.5})
    text = to_toml(cfg)
    assert "\x01" not in text and "\t" not in text and "\\u0001" in text
    path = tmp_path / "r.toml"
    path.write_text(text, encoding="utf-8")
    assert load_config(Recipe, path) == cfg
    assert tomllib.loads(text)["weights"] == cfg.weights


@pytest.mark.parametrize("cls", [SRRecipe, DCGANConfig, DataConfig])
def test_shipped_schemas_round_trip_through_toml(cls, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cls()), encoding="utf-8")
    assert load_config(cls, path) == cls()


def test_importing_config_loads_neither_keras_nor_tensorflow():
    code = (
        "import sys, kerasr.config; "
        "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_realesrgan_recipes_hold_the_x4plus_training_options():
    # options/train_realesrnet_x4plus.yml and train_realesrgan_x4plus.yml of Real-ESRGAN.
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "configs"
    net = load_config(SRRecipe, configs / "realesrnet_x4plus.toml")
    assert (net.g_optim.learning_rate, net.g_optim.beta_1, net.g_optim.beta_2) == (2e-4, 0.9, 0.99)
    assert net.g_optim.milestones == (1_000_000,) and net.g_optim.gamma == 0.5
    assert (net.train.steps, net.train.ema_decay, net.loss.pixel) == (1_000_000, 0.999, "l1")
    assert net.generator.num_basic_blocks == 23 and net.generator.rrdb_channels == 64
    for name in ("realesrnet_x4plus", "realesrgan_x4plus", "realesr_general_x4v3"):
        recipe = load_config(SRRecipe, configs / f"{name}.toml")
        data, loss = recipe.data, recipe.loss
        assert (data.patch_size, data.batch_size, data.degradation.kind) == (256, 12, "realesrgan")
        assert data.degradation.crop_pad_size == 400, name
        assert (loss.l1_gt_usm, loss.percep_gt_usm, loss.gan_gt_usm) == (True, True, False), name
        assert data.degradation.pool_size == 180 and data.augment.hflip_prob == 0.5
        assert data.augment.vflip_prob == data.augment.transpose_prob == 0


def test_a_setting_of_several_kinds_names_them_all_when_wrong():
    with pytest.raises(ConfigError) as error:
        load_config(SRRecipe, overrides=["train.jit_compile=maybe"])
    assert str(error.value) == (
        "'train.jit_compile' must be true or false or one of 'auto'. Received: 'maybe'"
    )
    assert load_config(SRRecipe, overrides=["train.jit_compile=auto"]).train.jit_compile == "auto"
