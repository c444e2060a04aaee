"""The JSON bodies of the web API; they are also its OpenAPI documentation at /docs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

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
    # would otherwise silently draw random images. Strict: a number is a JSON number, not
    # "5" or true, and `upscale` is true, false or a name, not 1.
    model_config = ConfigDict(extra="forbid", strict=True)

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

    @field_validator("upscale", mode="before")
    @classmethod
    def _bool_or_name(cls, value):
        # One message instead of one per member of the union.
        if not isinstance(value, bool | str):
            raise PydanticCustomError("upscale", "must be true, false or an upscaler's name")
        return value


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
    busy: int = Field(description="Model calls running or waiting for a worker.")
    requests: int = Field(
        description="Requests with a body being handled, uploads still arriving included."
    )
