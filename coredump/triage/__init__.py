"""Explain crashes: signals, reasons, signatures."""
