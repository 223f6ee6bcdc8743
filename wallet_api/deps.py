"""What the endpoints depend on, declared once: a connection, the signed-in user, paging."""

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError
from sqlalchemy import Connection

from wallet.errors import AuthenticationError
from wallet_api.auth import read_token

MAX_PAGE = 1_000_000
DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 100

bearer = HTTPBearer(
    auto_error=False,  # so that every refusal is our own 401 with a JSON body
    description="A token from `wallet token USER_ID`, sent as `Authorization: Bearer <token>`.",
)


def get_connection(request: Request) -> Iterator[Connection]:
    with request.app.state.engine.connect() as connection:
        yield connection


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

    Pydantic alone would read all of those as 3.
    """
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
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


WholeNumber = Annotated[int, BeforeValidator(written_in_digits)]


@dataclass(frozen=True)
class Paging:
    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


def get_paging(
    page: Annotated[WholeNumber, Query(ge=1, le=MAX_PAGE, description="Page number, from 1.")] = 1,
    per_page: Annotated[
        WholeNumber, Query(ge=1, le=MAX_PER_PAGE, description="Rows per page.")
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


DbConnection = Annotated[Connection, Depends(get_connection)]
CurrentUserId = Annotated[int, Depends(get_current_user_id)]
PageParams = Annotated[Paging, Depends(get_paging)]

# Routes that list a user's rows. Signing in is checked first, so that a request without a valid
# token is answered 401 whatever else is wrong with it.
SIGNED_IN_LIST = [Depends(get_current_user_id), Depends(reject_repeated_parameters)]
