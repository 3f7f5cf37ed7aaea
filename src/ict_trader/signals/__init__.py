"""The ICT signal: sweep -> displacement -> market structure shift (see docs/signal.md)."""

from ict_trader.core.signal import Direction, Signal
from ict_trader.signals.detector import IctDetector, detect_signals
from ict_trader.signals.params import SignalParams

__all__ = ["Direction", "IctDetector", "Signal", "SignalParams", "detect_signals"]
