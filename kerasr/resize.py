"""The cubic convolution kernels of image resizing, once for every face that uses them.

Keys' cubic kernel has one free parameter `a`. MATLAB's `imresize` uses a = -0.5 (the LR
images of the SR benchmarks, `kerasr.evaluation.sr` in numpy and `kerasr.data.resize` in
TensorFlow); PyTorch's `F.interpolate`, OpenCV and ncnn use a = -0.75 (Real-ESRGAN's
degradations in `kerasr.data.resize`, the x2 / x3 releases of an x4 network in
`kerasr.models.rescaled`). The functions take numpy arrays or TensorFlow / Keras tensors
alike (`xp` is `numpy` or `tensorflow` where a function needs `abs` and `where`), so each
face computes the same polynomial.

Reference:
    R. Keys, "Cubic convolution interpolation for digital image processing", 1981.
"""

MATLAB_A = -0.5
PYTORCH_A = -0.75


def cubic_near(x, a):
    """Keys' kernel for 0 <= x <= 1."""
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0


def cubic_far(x, a):
    """Keys' kernel for 1 < x < 2 (0 from 2 on)."""
    return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a


def cubic_kernel(x, a, xp):
    """Keys' kernel at any `x` (0 for |x| >= 2); `xp` is `numpy` or `tensorflow`."""
    ax = xp.abs(x)
    zero = ax * 0.0
    return xp.where(ax <= 1.0, cubic_near(ax, a), xp.where(ax < 2.0, cubic_far(ax, a), zero))


def cubic_taps(t, a):
    """The weights of the four taps at offsets -1, 0, 1, 2 from a sample at fraction
    `0 <= t < 1` past tap 0 (interpolation without antialiasing)."""
    return cubic_far(t + 1.0, a), cubic_near(t, a), cubic_near(1.0 - t, a), cubic_far(2.0 - t, a)
