"""Runtime compatibility layers for running one TF code path on another TensorFlow."""
