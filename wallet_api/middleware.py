"""A pure ASGI middleware that treats `?status=` as if `status` had not been sent."""

from starlette.types import ASGIApp, Receive, Scope, Send


class DropEmptyQueryValues:
    """Removes query parameters whose value is empty, keeping the rest byte for byte."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            scope = dict(scope, query_string=drop_empty_values(scope["query_string"]))
        await self.app(scope, receive, send)


def drop_empty_values(query_string: bytes) -> bytes:
    """`a=&b=2&c&&d=4` -> `b=2&d=4`."""
    kept = [pair for pair in query_string.split(b"&") if pair.partition(b"=")[2]]
    return b"&".join(kept)


def allow_empty_query_values(document: dict) -> dict:
    """Says in an OpenAPI document what the middleware does: every query parameter may be sent
    empty (`allowEmptyValue`), which is the same as not sending it."""
    for path in document.get("paths", {}).values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    parameter["allowEmptyValue"] = True
    return document
