"""Quantization: primitives, BN folding (int8 export, QAT and low-bit networks in progress)."""
