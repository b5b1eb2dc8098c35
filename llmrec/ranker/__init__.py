"""The learned ranker: features per candidate, LightGBM LambdaMART training, versioned models."""
