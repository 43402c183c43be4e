"""/api/templates — message templates, the four `system_*` prompts included (original §1.13,
ui-contract §2: `{id, title, text, createdAt}`). Duplicate titles are 409, bad lengths 400 (Part C)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from therascript.chat.v1 import chat_pb2

from ..clients import ServiceClients, get_clients
from ..fields import NON_BLANK_PATTERN, Name200
from ..params import TemplateId

router = APIRouter(tags=["templates"])

Title = Name200  # NFC, trimmed, no control/bidi/zero-width characters; uniqueness is the chat service's (409)
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000),
                 Field(json_schema_extra={"pattern": NON_BLANK_PATTERN})]


class TemplateBody(BaseModel):
    """`{title (1..200), text (1..10000)}`, both trimmed."""

    model_config = ConfigDict(extra="forbid")
    title: Title
    text: Text


def template_json(t: chat_pb2.Template) -> dict:
    return {"id": t.id, "title": t.title, "text": t.text, "createdAt": t.created_at_ms}


@router.get("/templates", summary="Get all saved templates")
async def list_templates(clients: ServiceClients = Depends(get_clients)) -> list[dict]:
    """Every template, newest first, system prompts included."""
    reply = await clients.chat.ListTemplates(chat_pb2.ListTemplatesRequest())
    return [template_json(t) for t in reply.templates]


@router.post("/templates", status_code=201, summary="Create a new template")
async def create_template(body: TemplateBody, clients: ServiceClients = Depends(get_clients)) -> dict:
    """201 with the template; 409 if the title is taken."""
    return template_json(await clients.chat.CreateTemplate(chat_pb2.TemplateInput(title=body.title, text=body.text)))


@router.put("/templates/{template_id}", summary="Update an existing template")
async def update_template(template_id: TemplateId, body: TemplateBody,
                          clients: ServiceClients = Depends(get_clients)) -> dict:
    """Full replacement; 404 if unknown, 409 if the new title is another template's."""
    request = chat_pb2.UpdateTemplateRequest(id=template_id,
                                             template=chat_pb2.TemplateInput(title=body.title, text=body.text))
    return template_json(await clients.chat.UpdateTemplate(request))


@router.delete("/templates/{template_id}", summary="Delete a template")
async def delete_template(template_id: TemplateId, clients: ServiceClients = Depends(get_clients)) -> dict:
    """`{message}`; 404 if unknown."""
    reply = await clients.chat.DeleteTemplate(chat_pb2.TemplateRef(id=template_id))
    return {"message": reply.message}
