"""Therascript chat service: chats, messages, templates, context usage and streamed replies."""
