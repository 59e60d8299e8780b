"""Detector training (needs the `train` extra: tensorflow-cpu). Nothing else in `inspector` imports this."""
