"""Detection: the detector interface, its LiteRT implementation, model packages and tiling."""
