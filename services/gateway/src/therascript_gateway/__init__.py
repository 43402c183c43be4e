"""The Therascript REST gateway (FastAPI): validates, authenticates, maps REST ⇄ gRPC. Owns no data."""
