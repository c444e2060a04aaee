"""Networks only: no training logic lives here."""

from kerasr.models.rrdbnet import RRDBNet

__all__ = ["RRDBNet"]
