"""Preprocessing: fingerprint, plan, reorientation, resampling, normalisation, on-disk cache."""
