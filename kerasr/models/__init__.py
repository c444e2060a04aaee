"""Networks only: no training logic lives here."""

from kerasr.models.rescaled import Rescaled
from kerasr.models.rrdbnet import RRDBNet
from kerasr.models.srvgg import SRVGGNetCompact

__all__ = ["RRDBNet", "Rescaled", "SRVGGNetCompact"]
