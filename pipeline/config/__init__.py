"""The run's configuration: typed sections from YAML, validated once, and the schedule they give."""
