"""The JSON bodies of the web API; they are also its OpenAPI documentation at /docs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kerasr.generation import MAX_SEED


class GeneratorOut(BaseModel):
    name: str
    description: str
    image_size: int


class UpscalerOut(BaseModel):
    name: str
    description: str
    scale: int


class LimitsOut(BaseModel):
    max_upload_bytes: int
    max_pixels: int
    max_images: int
    max_seed: int


class ModelsOut(BaseModel):
    generators: list[GeneratorOut]
    upscalers: list[UpscalerOut]
    default_upscaler: str | None
    default_generator: str | None
    limits: LimitsOut


class GenerateIn(BaseModel):
    # An unknown field is refused (422 naming it) rather than ignored: `seeds` for `seed`
    # would otherwise silently draw random images.
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, description="Name of a generator, from GET /api/models; the default if left out."
    )
    n: int = Field(5, ge=1, description="How many images (at most the server's max_images).")
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description="First seed; image i uses seed + i. Random seeds when left out.",
    )
    upscale: bool | str = Field(
        False,
        description="Also upscale the images: true for the default upscaler, or its name.",
    )


class GeneratedImage(BaseModel):
    seed: int
    width: int
    height: int
    png: str = Field(description="The image as a base64-encoded PNG.")


class GenerateOut(BaseModel):
    model: str
    upscaler: str | None
    images: list[GeneratedImage]


class HealthOut(BaseModel):
    status: str
    generators: int
    upscalers: int
    workers: int
    busy: int
