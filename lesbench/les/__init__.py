"""Linear Emotion Space (LES)."""
