import dataclasses
from typing import Literal

import pytest

from kerasr.config import ConfigError, check, load_config, to_toml


@dataclasses.dataclass(frozen=True)
class Optim:
    lr: float = 2e-4
    milestones: tuple[int, ...] = (200_000,)
    kind: Literal["adam", "sgd"] = "adam"

    def __post_init__(self):
        check(self.lr > 0, f"optim.lr must be > 0. Received: {self.lr}")


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str = "x"
    batch_size: int = 16
    optim: Optim = Optim()
    note: str | None = None


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
        ("batch=1", "unknown config key 'batch'; valid keys: name, batch_size, optim, note"),
        ("batch_size=many", "'batch_size' must be an integer"),
        ("optim.kind=rmsprop", "'optim.kind' must be one of 'adam', 'sgd'"),
        ("optim.lr=-1", "optim.lr must be > 0"),
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
