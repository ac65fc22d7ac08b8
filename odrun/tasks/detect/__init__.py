"""The box-detection task (boxes, and instance masks in masks/) on the TF Object Detection API."""
