"""Losses from candidate sets (partial labels) and the baselines they are compared with."""
