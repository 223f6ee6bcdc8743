"""Bearer tokens: HS256 JWTs whose `sub` is the user id, written as a string."""

import re
from datetime import UTC, datetime, timedelta

import jwt
from jwt.exceptions import InvalidSubjectError

from wallet.errors import AuthenticationError
from wallet.settings import Settings

ALGORITHM = "HS256"
# The user id column is a signed 64-bit integer; a larger id can belong to nobody.
MAX_USER_ID = 2**63 - 1
USER_ID_TEXT = re.compile(r"[1-9][0-9]{0,18}")


def issue_token(user_id: int, settings: Settings, lifetime: timedelta = timedelta(hours=12)) -> str:
    """A token that signs in as `user_id` until `lifetime` from now."""
    if not 1 <= user_id <= MAX_USER_ID:
        raise ValueError(f"user_id must be between 1 and {MAX_USER_ID}, got {user_id}")
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, settings.jwt_signing_key(), algorithm=ALGORITHM)


def read_token(token: str, signing_key: str) -> int:
    """The user id a token signs in as; AuthenticationError says what is wrong with it."""
    try:
        claims = jwt.decode(
            token, signing_key, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.ExpiredSignatureError as error:
        raise AuthenticationError("the token has expired") from error
    except jwt.MissingRequiredClaimError as error:
        raise AuthenticationError(f"the token has no `{error.claim}` claim") from error
    except jwt.InvalidAlgorithmError as error:
        raise AuthenticationError(f"the token must be signed with {ALGORITHM}") from error
    except jwt.InvalidSignatureError as error:
        raise AuthenticationError("the token's signature does not match") from error
    except InvalidSubjectError as error:
        raise AuthenticationError("the token's `sub` must be a user id string") from error
    except jwt.DecodeError as error:
        raise AuthenticationError("the token is not a well-formed JWT") from error
    except jwt.InvalidTokenError as error:
        raise AuthenticationError(f"the token is not valid: {error}") from error
    subject = claims["sub"]
    if not USER_ID_TEXT.fullmatch(subject) or int(subject) > MAX_USER_ID:
        raise AuthenticationError("the token's `sub` must be a positive integer user id")
    return int(subject)
