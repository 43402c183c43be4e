"""Gateway test fixtures: the real gateway app (TestClient runs its lifespan) against real backends."""
