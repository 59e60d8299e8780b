"""Dataset loaders: DeepPCB layout, Pascal VOC XML, and the station's own reviewed history."""
