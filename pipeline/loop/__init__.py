"""The round loop and what it stands on: preflight, the run directory, stopping criteria."""
