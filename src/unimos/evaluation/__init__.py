"""Evaluation: DSC, NSD, HD95 scored only on what the reference annotates."""
