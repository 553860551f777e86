"""Training: data loading, the fit loop, cached frozen-backbone features and the train stage."""
