"""The catalog: ``GET /v1/products/{id}`` (scope ``search``); ``PUT`` and ``DELETE`` of one
product and ``POST /v1/products/bulk`` (scope ``admin``), searchable by every worker and
durable when answered. Request rows are validated as the catalog loader validates file rows
(the same bounds), with JSON types taken strictly (``"9.99"`` is not a price).

(No ``from __future__ import annotations``: FastAPI reads the real annotations of the
routes, whose body models are this app's.)
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi import Path as PathParam
from pydantic import AfterValidator
from starlette.responses import Response

from shopsearch.catalog.loaders import normalize_row
from shopsearch.catalog.schema import Product
from shopsearch.errors import BadRowError
from shopsearch.serve import schemas
from shopsearch.serve.dependencies import AdminKey, Reads, SearchKey, State
from shopsearch.serve.errors import ApiError
from shopsearch.serve.responses import json_response, problems_message
from shopsearch.serve.state import Generation

__all__ = ["ProductId", "router"]

ProductId = Annotated[
    str,
    PathParam(min_length=1, max_length=schemas.MAX_ID_CHARS),
    AfterValidator(schemas.valid_id),
]
ProductBody = Annotated[
    dict[str, Any],
    Body(description="a product in the catalog's format; its id, if given, must match"),
]


def router(models: schemas.RequestModels) -> APIRouter:
    """The routes, with this server's batch limit (``models``). (``/bulk`` comes first: the
    product id path would match it too.)"""
    routes = APIRouter(tags=["products"])

    @routes.post(
        "/v1/products/bulk",
        response_model=schemas.UpsertedResponse,
        responses=schemas.ERRORS,
        summary="Add or replace many products (searchable and durable on return)",
    )
    def bulk_upsert(
        body: models.bulk,  # type: ignore[name-defined]  # (this app's model)
        key: AdminKey,
        state: State,
    ) -> Response:
        products = _products(body.products)
        state.upsert(products)
        return json_response({"upserted": len({p.id for p in products})})

    one = "/v1/products/{product_id:path}"
    routes.add_api_route(
        one,
        get_product,
        methods=["GET"],
        response_model=schemas.Product,
        responses=schemas.ERRORS_AND_NOT_FOUND,
        summary="One product",
    )
    routes.add_api_route(
        one,
        put_product,
        methods=["PUT"],
        response_model=schemas.Product,
        responses=schemas.ERRORS,
        summary="Add or replace a product (searchable and durable on return)",
    )
    routes.add_api_route(
        one,
        delete_product,
        methods=["DELETE"],
        response_model=schemas.DeletedResponse,
        responses=schemas.ERRORS_AND_NOT_FOUND,
        summary="Remove a product",
    )
    return routes


async def get_product(product_id: ProductId, key: SearchKey, reads: Reads) -> Response:
    return await reads.run(_get_product, product_id)


def _get_product(generation: Generation, product_id: str) -> Response:
    product = generation.pipeline.get(product_id)
    if product is None:
        raise ApiError(404, "not_found", f"no product {product_id!r}")
    return json_response(product.to_dict())


def put_product(product_id: ProductId, body: ProductBody, key: AdminKey, state: State) -> Response:
    row = dict(body)
    row.setdefault("id", product_id)
    try:
        product = _product(row)
    except BadRowError as exc:
        raise ApiError(400, "invalid_product", f"product: {exc.reason}") from None
    if product.id != product_id:
        raise ApiError(
            400,
            "id_mismatch",
            f"the body's id {product.id!r} is not the path's {product_id!r}",
        )
    state.upsert([product])
    return json_response(product.to_dict())


def delete_product(product_id: ProductId, key: AdminKey, state: State) -> Response:
    if state.delete(product_id) == 0:
        raise ApiError(404, "not_found", f"no product {product_id!r}")
    return json_response({"deleted": 1})


def _products(rows: list[Any]) -> list[Product]:
    """The batch's products; :class:`ApiError` 400 naming every bad row (nothing stored)."""
    products: list[Product] = []
    problems = []
    for i, row in enumerate(rows):
        try:
            products.append(_product(row))
        except BadRowError as exc:
            problems.append(f"products[{i}]: {exc.reason}")
    if problems:
        raise ApiError(400, "invalid_product", problems_message(problems, "products"))
    return products


def _product(row: Any) -> Product:
    return normalize_row(row, json_types=True)
