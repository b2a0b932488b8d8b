"""LES-Talker model (CDAN), training and rendering."""
