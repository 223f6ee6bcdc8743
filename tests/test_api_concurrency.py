"""`wallet serve` answers more requests at once than it has threads and pooled connections.

A connection held by a `yield` dependency across the threads of one request once made every
thread wait for a connection whose holder waited for a thread: the API stood still until the
pool timed out. Here a real server with a pool of two connections takes 120 requests at once.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import httpx
from sqlalchemy import insert

from tests.support import ServedApi, serve_environment, signed_in
from wallet.db import write_transaction
from wallet.tables import payment_record

# More than the threads a uvicorn worker runs sync handlers on (anyio's default is 40).
REQUESTS_AT_ONCE = 120
# Well under SQLAlchemy's 30 s pool timeout, which a stalled server would wait out.
ANSWER_WITHIN_SECONDS = 15


def test_wallet_serve_answers_more_requests_at_once_than_it_has_threads(engine, settings, tmp_path):
    with write_transaction(engine) as connection:
        connection.execute(
            insert(payment_record),
            [
                {
                    "order_id": f"PB{number:06d}",
                    "user_id": 7,
                    "record_type": 3,
                    "actual_price": Decimal("9.90"),
                    "order_status": "paid",
                    "create_time": datetime(2026, 11, 1, 8, number, tzinfo=UTC),
                }
                for number in range(30)
            ],
        )
    env = serve_environment(
        settings.database_url,
        tmp_path / "var",
        WALLET_DB_POOL_SIZE="2",
        WALLET_DB_MAX_OVERFLOW="0",
    )
    headers = signed_in(7, settings)

    def read_orders(page: int) -> int:
        answer = httpx.get(
            f"{api.url}/payment/payment_record/",
            params={"page": page % 3 + 1},
            headers=headers,
            timeout=ANSWER_WITHIN_SECONDS,
        )
        return answer.status_code

    with (
        ServedApi(env, tmp_path / "serve.log") as api,
        ThreadPoolExecutor(max_workers=REQUESTS_AT_ONCE) as requests,
    ):
        statuses = list(requests.map(read_orders, range(REQUESTS_AT_ONCE)))

    assert statuses == [200] * REQUESTS_AT_ONCE
