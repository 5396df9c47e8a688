"""The ``/v1/collections`` routes: list (what the caller may see), create, delete."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from index.collections import check_name
from service.api.deps import Caller, CatalogDep
from service.api.errors import ApiError

router = APIRouter(tags=["collections"])


class CollectionOut(BaseModel):
    name: str
    documents: int
    chunks: int
    version: str
    default: bool


class CollectionList(BaseModel):
    collections: list[CollectionOut]
    default: str


class CreateCollection(BaseModel):
    name: str = Field(description="3-42 characters: letters, digits, '.', '_', '-'.")


class CollectionDeleted(BaseModel):
    name: str
    chunks_removed: int
    chroma_collections: list[str]


@router.get("/v1/collections", response_model=CollectionList)
def list_collections(catalog: CatalogDep, principal: Caller) -> CollectionList:
    infos = [catalog.collections.info(n) for n in catalog.visible(principal)]
    return CollectionList(
        collections=[CollectionOut(**asdict(i)) for i in infos], default=catalog.default_name
    )


@router.post(
    "/v1/collections",
    response_model=CollectionOut,
    status_code=201,
    responses={200: {"description": "it already existed"}},
)
def create_collection(
    body: CreateCollection, catalog: CatalogDep, principal: Caller, response: Response
) -> CollectionOut:
    if catalog.access.restricted(principal):
        raise ApiError(403, "this API key may not create collections")
    if not catalog.collections.create(check_name(body.name)):
        response.status_code = 200
    return CollectionOut(**asdict(catalog.collections.info(body.name)))


@router.delete("/v1/collections/{name}", response_model=CollectionDeleted)
async def delete_collection(name: str, catalog: CatalogDep, principal: Caller) -> CollectionDeleted:
    # Outside the caller's set reads as missing (404) before the 403 for limited keys.
    name = await run_in_threadpool(catalog.name_for, principal, name)
    if catalog.access.restricted(principal):
        raise ApiError(403, "this API key may not delete collections")
    gone = await run_in_threadpool(catalog.collections.delete, name)
    return CollectionDeleted(
        name=gone.name, chunks_removed=gone.chunks, chroma_collections=gone.chroma_collections
    )
