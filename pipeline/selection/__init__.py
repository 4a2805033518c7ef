"""Which unlabelled examples to label next: acquisition functions on arrays, no model, no Ray."""
