"""Shared path/query parameter types. Ids in paths are positive integers; anything else is 400
(API-CONTRACT.md Part B), which FastAPI's validation error handler produces."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

SessionId = Annotated[int, Path(gt=0, le=2**62, description="Session id (positive integer)")]
ChatId = Annotated[int, Path(gt=0, le=2**62, description="Chat id (positive integer)")]
JobId = Annotated[int, Path(gt=0, le=2**62, description="Job id (positive integer)")]
TemplateId = Annotated[int, Path(gt=0, le=2**62, description="Template id (positive integer)")]
ParagraphIndex = Annotated[int, Path(ge=0, le=2**31 - 1, description="Paragraph index (0-based)")]
