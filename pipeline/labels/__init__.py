"""Who labels: the simulated oracle and people, through request and answer files."""
