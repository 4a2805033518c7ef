"""How the selection model learns: update strategies, replay memories, models and the torch loop."""
