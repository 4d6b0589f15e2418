"""Discord ids in paths and bodies: snowflakes, checked before anything touches the database.

MongoDB stores 64-bit signed integers: an id of 2^63 or more cannot even be queried, and 0 is
never a Discord id. Both are refused with a 422 naming the field, like any other bad input.

The documented (and enforced) maximum is 9.2 * 10^18, just below 2^63, because clients that read
JSON numbers as doubles (JavaScript, many schema tools) see 2^63 - 1 as 2^63, and one that is
exact both as a double and in its shortest decimal spelling. Discord's ids reach it around 2084.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field

SNOWFLAKE_MIN = 1
SNOWFLAKE_MAX = 9_200_000_000_000_000_000

ClientIdPath = Annotated[
    int,
    Path(ge=SNOWFLAKE_MIN, le=SNOWFLAKE_MAX, description="The bot's application id (a Discord snowflake)"),
]
GuildIdPath = Annotated[int, Path(ge=SNOWFLAKE_MIN, le=SNOWFLAKE_MAX, description="A Discord guild id")]
SnowflakeField = Annotated[int, Field(ge=SNOWFLAKE_MIN, le=SNOWFLAKE_MAX, strict=True)]
