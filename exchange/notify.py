"""Being told, not only being able to look: what the daemon tells once, in the log and to a webhook.

The daemon's watch (after every poll, and every minute for what time alone changes) reads the health of every source and
feed (:mod:`exchange.health`), the events the last publish held back and the published closures
Waze still does not show, and tells each new fact **once**:

- a source or feed entering a state other than OK, and its return to OK;
- an event newly held back from the feeds (or held back for a new reason);
- a closure still not seen in Waze ``publish.waze_unseen_after_min`` minutes after its start.

"Once" holds across restarts and across instances sharing one store: a fact is claimed by
inserting its key into the ``notifications`` table, and only the process whose insert succeeds
logs it and POSTs it. A failed POST is logged and not retried (the table and the log keep it).

The POST body is one JSON object: ``kind`` (source, feed, held-back, late-closure), ``subject``,
``state`` (for source and feed), ``since`` (ISO 8601), ``detail``, and ``text``, a one-line
summary, so that Slack, Mattermost and Teams incoming webhooks show it as it is.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from exchange.db import db_error_message, writing
from exchange.health import Health, State, read_health
from exchange.output import iso
from exchange.schema import notifications

if TYPE_CHECKING:
    import httpx

    from exchange.config import Config

__all__ = ["Notice", "Watcher"]

log = logging.getLogger("exchange.notify")


@dataclass(frozen=True, slots=True)
class Notice:
    """One fact to tell: its key (told once), what it is about, and the words."""

    key: str
    kind: str
    subject: str
    text: str
    state: str | None = None
    since_ms: int | None = None
    detail: str = ""
    problem: bool = True

    def body(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "state": self.state,
                "since": iso(self.since_ms),
                "detail": self.detail, "text": f"traffic-exchange: {self.text}"}


@dataclass
class Watcher:
    """Finds what to tell, claims it in the store, logs it and POSTs it to ``notify.webhook_url``."""

    engine: Engine
    config: Config
    transport: httpx.BaseTransport | None = None
    sent: list[Notice] = field(default_factory=list)

    def check(self, now_ms: int) -> list[Notice]:
        """Tell every new fact; the ones this process told."""
        try:
            found = self.notices(now_ms)
        except (SQLAlchemyError, OSError) as exc:
            message = db_error_message(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
            log.error("cannot read the health from the store: %s", message)
            return []
        told = [notice for notice in found if self._claim(notice, now_ms)]
        for notice in told:
            (log.warning if notice.problem else log.info)("%s", notice.text)
            self._post(notice)
        return told

    def notices(self, now_ms: int) -> list[Notice]:
        from exchange.confirm import late_closures
        from exchange.publish import held_back_now

        held = held_back_now(self.engine)
        with self.engine.connect() as conn:
            report = read_health(conn, self.config, now_ms)
            found = [n for h in report.sources if (n := self._state_notice(conn, "source", h)) is not None]
            found += [n for h in report.feeds if (n := self._state_notice(conn, "feed", h)) is not None]
            late = late_closures(conn, now_ms, self.config.publish.waze_unseen_after_min, held)
        for event_id, reason in sorted(held.items()):
            digest = hashlib.sha256(reason.encode()).hexdigest()[:16]
            found.append(Notice(f"held-back:{event_id}:{digest}", "held-back", event_id,
                                f"event {event_id} is held back from the feeds: {reason}", detail=reason))
        for closure_id, status in late:
            text = status.warning(closure_id)
            if text is not None:
                found.append(Notice(f"late-closure:{closure_id}", "late-closure", closure_id, text, detail=text))
        return found

    def _state_notice(self, conn: Connection, kind: str, health: Health) -> Notice | None:
        """A state worth telling: a problem not told yet, or OK again after one."""
        if health.since_ms is None:  # never polled or published: a new install, nothing has gone wrong yet
            return None
        told = conn.execute(
            select(notifications.c.state).where(notifications.c.kind == kind, notifications.c.subject == health.name)
            .order_by(notifications.c.sent_ms.desc()).limit(1)
        ).scalar_one_or_none()
        if health.state is State.OK and told in (None, State.OK):
            return None
        since = iso(health.since_ms)
        text = f"{kind} {health.name} is {health.state} since {since}: {health.detail}"
        return Notice(f"{kind}:{health.name}:{health.state}:{health.since_ms}", kind, health.name, text,
                      state=str(health.state), since_ms=health.since_ms, detail=health.detail,
                      problem=health.state is not State.OK)

    def _claim(self, notice: Notice, now_ms: int) -> bool:
        try:
            with writing(self.engine) as conn:
                conn.execute(insert(notifications).values(
                    key=notice.key[:400], kind=notice.kind, subject=notice.subject[:300], state=notice.state,
                    sent_ms=now_ms, text=notice.text,
                ))
        except IntegrityError:
            return False  # told already, by this process before or by another instance
        except SQLAlchemyError as exc:
            log.error("cannot record a notification: %s", db_error_message(exc))
            return False
        return True

    def _post(self, notice: Notice) -> None:
        url = self.config.notify.webhook_url
        if not url:
            return
        import httpx

        try:
            with httpx.Client(timeout=self.config.notify.timeout_s, transport=self.transport) as client:
                response = client.post(url, json=notice.body())
        except httpx.HTTPError as exc:
            log.warning("webhook: cannot POST the notification (%s)", type(exc).__name__)
            return
        if response.status_code >= 400:
            log.warning("webhook: the receiver answered HTTP %s", response.status_code)
            return
        self.sent.append(notice)
