"""What a run shows: progress, the round table, compare summaries and experiment tracking."""
