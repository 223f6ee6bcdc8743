"""What the endpoints depend on, declared once: the database, the signed-in user, paging."""

from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError
from sqlalchemy import Engine

from wallet.errors import AuthenticationError
from wallet_api.auth import read_token

MAX_PAGE = 1_000_000
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100

bearer = HTTPBearer(
    auto_error=False,  # so that every refusal is our own 401 with a JSON body
    description="A token from `wallet token USER_ID`, sent as `Authorization: Bearer <token>`.",
)


def get_engine(request: Request) -> Engine:
    """The app's engine. Handlers take a connection from it and give it back in one call.

    NOTE: not a `yield` dependency holding a connection: that runs in a thread of its own, and
    the handler needs another. With more requests in flight than the threadpool has threads,
    every thread could wait for a pooled connection whose holder waits for a thread: the API
    stalled until the pool timeout (seen under 100 connections with 2 workers).
    """
    return request.app.state.engine


def get_current_user_id(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> int:
    if credentials is None:
        if "authorization" in request.headers:
            raise AuthenticationError("the Authorization header must read `Bearer <token>`")
        raise AuthenticationError("not signed in: send `Authorization: Bearer <token>`")
    return read_token(credentials.credentials, request.app.state.jwt_signing_key)


def _input_should_be(expected: str, error_type: str) -> PydanticCustomError:
    return PydanticCustomError(error_type, "Input should be {expected}", {"expected": expected})


def written_in_digits(value: object) -> object:
    """A number in the query is plain digits: `3`, never `3.0`, `+3`, `3_0` or `３`.

    Pydantic alone would read all of those as 3. A minus sign passes, so that `-1` is refused
    by the bounds ("greater than or equal to 1") rather than called not a whole number.
    """
    digits = value.removeprefix("-") if isinstance(value, str) else value
    if isinstance(digits, str) and not (digits.isascii() and digits.isdigit()):
        raise _input_should_be("a whole number", "int_parsing")
    return value


def written_as_one_of(choices: type[Enum]) -> BeforeValidator:
    """A query value must be written exactly as one of `choices` (for IntEnums: `3`, not `03`)."""
    written = [str(choice.value) for choice in choices]
    expected = f"{', '.join(written[:-1])} or {written[-1]}"

    def check(value: object) -> object:
        if isinstance(value, str) and value not in written:
            raise _input_should_be(expected, "enum")
        return value

    return BeforeValidator(check)


def whole_number(low: int, high: int) -> type[int]:
    """A query integer from `low` to `high`, written in digits.

    The bounds sit on the inner `int`, before the digit check: given after it (as Query(ge=...)),
    pydantic still enforces them but documents them as `ge`/`le`, which no JSON Schema reader
    knows, so the OpenAPI document would allow page=0.
    """
    return Annotated[int, Field(ge=low, le=high), BeforeValidator(written_in_digits)]


@dataclass(frozen=True)
class Paging:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def get_paging(
    page: Annotated[whole_number(1, MAX_PAGE), Query(description="Page number, from 1.")] = 1,
    per_page: Annotated[
        whole_number(1, MAX_PER_PAGE), Query(description="Rows per page.")
    ] = DEFAULT_PER_PAGE,
) -> Paging:
    return Paging(page=page, per_page=per_page)


def reject_repeated_parameters(request: Request) -> None:
    """422, shaped like FastAPI's own, when a query parameter is given more than once.

    Every parameter of this API takes one value; without this check the last one would win.
    """
    errors = [
        {
            "type": "repeated_parameter",
            "loc": ("query", name),
            "msg": f"`{name}` may be given once, it was given {len(values)} times",
            "input": values,
        }
        for name in dict.fromkeys(request.query_params)
        if len(values := request.query_params.getlist(name)) > 1
    ]
    if errors:
        raise RequestValidationError(errors)


Database = Annotated[Engine, Depends(get_engine)]
CurrentUserId = Annotated[int, Depends(get_current_user_id)]
PageParams = Annotated[Paging, Depends(get_paging)]

# Routes that list a user's rows. Signing in is checked first, so that a request without a valid
# token is answered 401 whatever else is wrong with it.
SIGNED_IN_LIST = [Depends(get_current_user_id), Depends(reject_repeated_parameters)]
