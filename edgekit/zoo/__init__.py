"""Real models built from data that ships offline, for the demo, recipes and tests."""
