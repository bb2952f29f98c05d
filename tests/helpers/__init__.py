"""Helpers the tests share: run processes, chi-square, W&B offline records."""
