"""`kerasr.info`: what kerasr sees here and what it will choose."""

from kerasr import weights
from kerasr.info import system_info
from kerasr.upscaling.inference import native_bfloat16


def test_system_info_reports_versions_devices_choices_and_cache():
    info = system_info()
    assert info.versions["kerasr"] == "0.1.0" and info.versions["tensorflow"][0].isdigit()
    assert any(d.startswith("CPU:") for d in info.devices)
    gpu = any(d.startswith("GPU:") for d in info.devices)
    expected = "float16" if gpu else ("bfloat16" if native_bfloat16() else "float32")
    assert info.upscale_precision.value == expected and info.upscale_precision.reason
    assert info.upscale_batch.value == ("4" if gpu else "1")
    assert info.weights_cache == weights.kerasr_home() / "models"
    assert set(info.cached_models) <= {e.name for e in weights.list_models()}
