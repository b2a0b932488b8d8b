"""The face and audio extractors every part shares: the MediaPipe face tracker and its frames
table, the blendshape-to-AU mapping, head pose, the linear face model with its rigid alignment,
PCA and coefficients table, the crop alignment and the per-frame audio features.

They stand on the ground floor (schema, errors, io, weights, atomic) and import nothing above it,
so prepare, the metrics, the baselines and LES-Talker use the same code for the same measurement.
"""
