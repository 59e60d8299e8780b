"""Detector evaluation: COCO mAP via pycocotools and DeepPCB's own protocol."""
