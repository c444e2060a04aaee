"""RRDBNet: the generator of ESRGAN and Real-ESRGAN."""

import keras
from keras import ops

from kerasr.layers import RRDB, PixelShuffle, PixelUnshuffle, conv3x3, leaky_relu, upsample_nearest

UPSAMPLERS = ("nearest", "subpixel")


@keras.saving.register_keras_serializable(package="kerasr")
class RRDBNet(keras.Model):
    """The ESRGAN / Real-ESRGAN generator, mapping `[0, 1]` images to `scale`-times larger ones.

    A first convolution, `num_basic_blocks` residual-in-residual dense blocks with a long
    skip connection, then two x2 upsampling stages and two output convolutions. As in
    Real-ESRGAN, scales 2 and 1 first fold the input with a pixel unshuffle (by 2 or 4), so
    the body always works at a quarter of the output resolution and the upsampler is
    always x4; this keeps the cost of x2 and x1 models close to that of x4.

    Args:
        scale: 1, 2 or 4.
        in_channels: channels of the input image.
        out_channels: channels of the output image.
        rrdb_channels: feature channels of the body (64).
        growth_channels: channels added by each dense convolution (32).
        num_basic_blocks: RRDBs in the body (23 in ESRGAN and Real-ESRGAN x4plus).
        num_dense_blocks: residual dense blocks per RRDB (3).
        num_residual_blocks: convolutions per residual dense block (5).
        residual_scaling: residual branch factor (0.2).
        upsampler: `"nearest"` (nearest-neighbour x2 then a convolution, the default of
            ESRGAN, free of checkerboard artefacts) or `"subpixel"` (a convolution to 4x
            the channels then a pixel shuffle).

    Example:

        model = RRDBNet(scale=4, num_basic_blocks=6)
        sr = model(keras.random.uniform((1, 32, 32, 3)))  # (1, 128, 128, 3)

    Reference:
        [ESRGAN](https://arxiv.org/abs/1809.00219),
        [Real-ESRGAN](https://arxiv.org/abs/2107.10833).
    """

    def __init__(
        self,
        scale=4,
        in_channels=3,
        out_channels=3,
        rrdb_channels=64,
        growth_channels=32,
        num_basic_blocks=23,
        num_dense_blocks=3,
        num_residual_blocks=5,
        residual_scaling=0.2,
        upsampler="nearest",
        **kwargs,
    ):
        if scale not in (1, 2, 4):
            raise ValueError(f"`scale` must be 1, 2 or 4. Received: scale={scale}")
        if upsampler not in UPSAMPLERS:
            raise ValueError(
                f"`upsampler` must be one of {UPSAMPLERS}. Received: upsampler={upsampler!r}"
            )
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("rrdb_channels", rrdb_channels),
            ("growth_channels", growth_channels),
            ("num_basic_blocks", num_basic_blocks),
            ("num_dense_blocks", num_dense_blocks),
            ("num_residual_blocks", num_residual_blocks),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        super().__init__(**kwargs)
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.rrdb_channels = rrdb_channels
        self.growth_channels = growth_channels
        self.num_basic_blocks = num_basic_blocks
        self.num_dense_blocks = num_dense_blocks
        self.num_residual_blocks = num_residual_blocks
        self.residual_scaling = residual_scaling
        self.upsampler = upsampler

        dtype = self.dtype_policy
        self.unshuffle = PixelUnshuffle(4 // scale, dtype=dtype) if scale < 4 else None
        self.conv_first = conv3x3(rrdb_channels, "conv_first", dtype=dtype)
        self.body = [
            RRDB(
                rrdb_channels,
                growth_channels,
                num_dense_blocks,
                num_residual_blocks,
                residual_scaling,
                name=f"rrdb{i + 1}",
                dtype=dtype,
            )
            for i in range(num_basic_blocks)
        ]
        self.conv_body = conv3x3(rrdb_channels, "conv_body", dtype=dtype)
        up_filters = rrdb_channels * 4 if upsampler == "subpixel" else rrdb_channels
        up_activation = None if upsampler == "subpixel" else leaky_relu
        self.conv_up1 = conv3x3(up_filters, "conv_up1", activation=up_activation, dtype=dtype)
        self.conv_up2 = conv3x3(up_filters, "conv_up2", activation=up_activation, dtype=dtype)
        self.shuffle = PixelShuffle(2, dtype=dtype) if upsampler == "subpixel" else None
        self.conv_hr = conv3x3(rrdb_channels, "conv_hr", activation=leaky_relu, dtype=dtype)
        self.conv_last = conv3x3(out_channels, "conv_last", dtype=dtype)

    def build(self, input_shape):
        n, h, w, _ = input_shape
        shape = (n, h, w, self.in_channels * (4 // self.scale) ** 2)
        self.conv_first.build(shape)
        feat = (n, h, w, self.rrdb_channels)
        for block in self.body:
            block.build(feat)
        self.conv_body.build(feat)
        self.conv_up1.build(feat)
        self.conv_up2.build(feat)
        self.conv_hr.build(feat)
        self.conv_last.build(feat)

    def call(self, x):
        if self.unshuffle is not None:
            x = self.unshuffle(x)
        feat = self.conv_first(x)
        body = feat
        for block in self.body:
            body = block(body)
        feat = feat + self.conv_body(body)
        for conv in (self.conv_up1, self.conv_up2):
            if self.shuffle is not None:
                feat = leaky_relu(self.shuffle(conv(feat)))
            else:
                feat = conv(upsample_nearest(feat, 2))
        out = self.conv_last(self.conv_hr(feat))
        return ops.cast(out, "float32")

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        s = self.scale
        return (n, None if h is None else h * s, None if w is None else w * s, self.out_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "scale": self.scale,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "rrdb_channels": self.rrdb_channels,
            "growth_channels": self.growth_channels,
            "num_basic_blocks": self.num_basic_blocks,
            "num_dense_blocks": self.num_dense_blocks,
            "num_residual_blocks": self.num_residual_blocks,
            "residual_scaling": self.residual_scaling,
            "upsampler": self.upsampler,
        }


def arch_from_shapes(
    first_in, feat, growth, out_channels, blocks, dense_blocks, convs_per_block, up_channels
):
    """RRDBNet constructor arguments read off the shapes of its weights.

    Args:
        first_in: input channels of `conv_first` (`in_channels` times the unshuffle fold).
        feat, growth, out_channels: widths of `conv_first`, a dense conv and `conv_last`.
        blocks, dense_blocks, convs_per_block: the three block counts.
        up_channels: output channels of `conv_up1` (4x `feat` for the sub-pixel upsampler).

    Returns:
        The keyword arguments, or `None` when the shapes cannot come from an RRDBNet.
    """
    scale = {1: 4, 4: 2, 16: 1}.get(first_in // out_channels)
    if scale is None or first_in % out_channels or up_channels not in (feat, 4 * feat):
        return None
    return {
        "scale": scale,
        "in_channels": out_channels,
        "out_channels": out_channels,
        "rrdb_channels": feat,
        "growth_channels": growth,
        "num_basic_blocks": blocks,
        "num_dense_blocks": dense_blocks,
        "num_residual_blocks": convs_per_block,
        "upsampler": "subpixel" if up_channels == 4 * feat else "nearest",
    }
