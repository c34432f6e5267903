"""Time–activity kinetics (placeholder, filled below)."""
