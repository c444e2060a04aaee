"""The on-disk cache of converted weights: `$KERASR_HOME/models` (default
`~/.cache/kerasr/models`), one `NAME.weights.h5` per network (and the preset `NAME.json` of
the upscalers, `kerasr.weights.presets`).

An entry is checked against the checksum its converter expects (`weights_digest`) on every
load: an entry that is unreadable or holds other values is converted again, and a cache that
cannot be written only costs the conversion next time.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from kerasr.errors import KerasrError, first_line
from kerasr.io import atomic_path
from kerasr.weights.presets import save_weights, weights_digest


def kerasr_home() -> Path:
    """The cache root: `$KERASR_HOME`, else `~/.cache/kerasr`."""
    return Path(os.environ.get("KERASR_HOME") or Path.home() / ".cache" / "kerasr")


def cache_path(name: str) -> Path:
    """Where the converted weights of `name` are cached."""
    return kerasr_home() / "models" / f"{name}.weights.h5"


def is_cached(name: str) -> bool:
    return cache_path(name).is_file()


def load_cached(model, path: Path, sha256: str) -> bool:
    """Loads the cache entry `path` into `model` if it holds the expected weights.

    Returns False when there is no entry or it is unreadable or has another checksum (then
    with a warning): the caller converts the weights again and `store_converted` replaces it.
    """
    if not path.is_file():
        return False
    try:
        model.load_weights(path)
        if weights_digest(model) == sha256:
            return True
        problem = "its checksum does not match"
    except Exception as e:  # any unreadable cache entry is rebuilt, whatever h5py raised
        problem = first_line(e)
    warnings.warn(f"cache entry {path} is corrupt ({problem}); rebuilding it", stacklevel=3)
    return False


def store_converted(
    model, path: Path, sha256: str, *, label: str, package: str, preset=None
) -> None:
    """Checks freshly converted weights against their checksum, then caches them at `path`,
    with their `kerasr.weights.presets.Preset` beside them when the network has one (the
    upscalers; the judges of `kerasr evaluate-gan` are rebuilt by their own loaders).

    Raises:
        KerasrError: if the checksum differs (the installed `package` is not the expected one).
    """
    digest = weights_digest(model)
    if digest != sha256:
        raise KerasrError(
            f"the weights of {label} in {package} do not match the expected checksum "
            f"(got {digest[:12]}..., expected {sha256[:12]}...); reinstall {package}"
        )
    try:
        if preset is not None:
            save_weights(model, path, preset)
        else:
            with atomic_path(path) as tmp:
                model.save_weights(tmp)
    except (KerasrError, OSError) as e:
        # The converted weights are in memory and correct: a cache that cannot be written
        # (read-only KERASR_HOME, a folder in the way) only costs the conversion next time.
        warnings.warn(
            f"cannot cache {label} in {path.parent} ({first_line(e)}); using the "
            "converted weights without caching (set KERASR_HOME to a writable folder)",
            stacklevel=4,
        )
