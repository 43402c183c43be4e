"""Routes of this resource are built with their owning service (see the issue); empty until then."""

from fastapi import APIRouter

router = APIRouter()
