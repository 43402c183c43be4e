"""Shared plumbing for Therascript services. Keep it thin: no domain logic lives here."""
