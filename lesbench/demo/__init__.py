"""Synthetic MEAD-layout demo data set."""
