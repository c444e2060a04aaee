"""The network kinds of the architecture registry (`kerasr.weights.networks`), by role; no
Keras import, so deciding what a preset holds costs nothing."""

UPSCALERS = ("rrdbnet", "srvgg")
GENERATORS = ("dcgan", "fastgan")
DISCRIMINATORS = (
    "vgg_discriminator",
    "unet_discriminator",
    "dcgan_discriminator",
    "projected_discriminator",
)
