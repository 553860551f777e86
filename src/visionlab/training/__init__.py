"""Training: the fit loop, its inputs and outputs, data parallelism, featurize and the train stage."""
