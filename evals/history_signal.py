"""How much signal the demo generator planted, by plain counting (no model): ``python -m evals.history_signal``.

Seeds a fresh demo store in a temporary directory and prints, over weekly snapshots, the share of
customers ordering within 3 days with and without a product conversation in the 3 days before, the
share with no order in 30 days with and without a complaint in the 14 days before, containment and
ratings. ``tests/core/test_history.py`` asserts the same counts' direction and size.
"""

from __future__ import annotations

import argparse
import bisect
import tempfile
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.db import ConversationLogRow, CustomerRow, OrderRow, TurnAuditRow, make_engine
from core.seed import REFERENCE_DATE, seed

__all__ = ["main"]

_PRODUCT_INTENTS = frozenset({"product_inquiry", "product_recommendation", "purchase"})
_COMPLAINT_INTENTS = frozenset({"complaint", "return_refund"})


def main(argv: list[str] | None = None) -> None:
    """Seed a temporary demo store and print the planted signal."""
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'kefu.db'}")
        seed(engine)
        with Session(engine) as session:
            customers = list(session.scalars(select(CustomerRow).order_by(CustomerRow.id)))[2:]  # generated only
            logs = list(session.scalars(select(ConversationLogRow)))
            turns = session.scalar(select(func.count()).select_from(TurnAuditRow))
            orders: dict[str, list[datetime]] = defaultdict(list)
            for customer_id, created_at in session.execute(select(OrderRow.customer_id, OrderRow.created_at)):
                orders[customer_id].append(created_at)
        engine.dispose()
    for times in orders.values():
        times.sort()

    def ordered(customer_id: str, after: datetime, until: datetime) -> bool:
        times = orders.get(customer_id, [])
        at = bisect.bisect_right(times, after)
        return at < len(times) and times[at] <= until

    def moments(intents: frozenset[str], negative_only: bool) -> dict[str, list[datetime]]:
        found: dict[str, list[datetime]] = defaultdict(list)
        for log in logs:
            if intents & set(log.intents) and (log.negative_turns or not negative_only):
                found[log.customer_id].append(log.last_at)
        return found

    def snapshots(
        cue: dict[str, list[datetime]], lookback: int, horizon: int, outcome: Callable[[str, datetime], bool]
    ) -> dict[bool, tuple[int, int]]:
        groups = {True: [0, 0], False: [0, 0]}
        at = REFERENCE_DATE - timedelta(days=700)
        while at < REFERENCE_DATE - timedelta(days=horizon):
            for customer in customers:
                if customer.created_at >= at or (horizon == 30 and not ordered(customer.id, datetime.min, at)):
                    continue
                recent = any(at - timedelta(days=lookback) <= moment < at for moment in cue[customer.id])
                groups[recent][0] += 1
                groups[recent][1] += outcome(customer.id, at)
            at += timedelta(days=7)
        return {key: (n, hits) for key, (n, hits) in groups.items()}

    buy = snapshots(moments(_PRODUCT_INTENTS, False), 3, 3, lambda c, at: ordered(c, at, at + timedelta(days=3)))
    quiet = snapshots(
        moments(_COMPLAINT_INTENTS, True), 14, 30, lambda c, at: not ordered(c, at, at + timedelta(days=30))
    )
    print(f"conversations logged: {len(logs):,}; turn audit rows: {turns}")
    for label, groups, cue in (
        ("order within 3 days", buy, "a product conversation in the 3 days before"),
        ("no order within 30 days (customers who had ordered)", quiet, "a complaint in the 14 days before"),
    ):
        (n_with, hit_with), (n_without, hit_without) = groups[True], groups[False]
        print(
            f"{label}: {hit_with / n_with:.1%} with {cue} (n={n_with:,}), "
            f"{hit_without / n_without:.1%} without (n={n_without:,})"
        )
    contained = sum(log.handoff_reason is None for log in logs) / len(logs)
    rated = [log for log in logs if log.satisfaction is not None]
    troubled = [log.satisfaction or 0 for log in rated if log.negative_turns or log.handoff_reason]
    calm = [log.satisfaction or 0 for log in rated if not (log.negative_turns or log.handoff_reason)]
    print(
        f"contained: {contained:.1%}; rated: {len(rated) / len(logs):.1%}; mean rating "
        f"{sum(calm) / len(calm):.1f} untroubled, {sum(troubled) / len(troubled):.1f} after negative turns or a handoff"
    )


if __name__ == "__main__":
    main()
