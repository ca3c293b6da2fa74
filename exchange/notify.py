"""Being told, not only being able to look: what the daemon tells once, in the log and to a webhook.

The daemon's watch (after every poll, and every minute for what time alone changes) reads the health of every source and
feed (:mod:`exchange.health`), the events the last publish held back and the published closures
Waze still does not show, and tells each new fact **once**:

- a source or feed entering a state other than OK, and its return to OK;
- an event newly held back from the feeds (or held back for a new reason);
- a target the last publish refused as a whole (the mass hold-back guard, feeds that fail their
  check): its last good feeds stay served, and its events are not "held back";
- a closure still not seen in Waze ``publish.waze_unseen_after_min`` minutes after its start.

"Once" holds across restarts and across instances sharing one store: a fact is claimed by
inserting its key into the ``notifications`` table, and only the process whose insert succeeds
logs it and POSTs it. A problem told before a webhook was configured (in the log only) is told
once more when one is, while it goes on. A POST that fails (the receiver is down, answers an error) is sent again
at the first watch a minute or more later (a watch follows every poll, and runs every minute), by
whichever instance watches first, until it is taken or a day has passed.

The POST body is one JSON object: ``kind`` (source, feed, held-back, publish-refused, late-closure), ``subject``,
``state`` (for source and feed), ``since`` (ISO 8601), ``detail``, and ``text``, a one-line
summary, so that Slack, Mattermost and Teams incoming webhooks show it as it is.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, exists, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import aliased

from exchange.db import db_error_message, writing
from exchange.health import Health, State, read_health, refusal_spells
from exchange.output import iso
from exchange.runtime import now_ms as now
from exchange.schema import notifications

if TYPE_CHECKING:
    import httpx

    from exchange.config import Config

__all__ = ["GIVE_UP_AFTER_MS", "RETRY_EVERY_MS", "Notice", "Watcher"]

log = logging.getLogger("exchange.notify")

#: a notification the webhook did not take is POSTed again this often ...
RETRY_EVERY_MS = 60_000
#: ... for this long
GIVE_UP_AFTER_MS = 24 * 3_600_000


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
    #: the last notices delivered (a daemon runs for months: only the latest are kept)
    sent: deque[Notice] = field(default_factory=lambda: deque(maxlen=100))

    def check(self, now_ms: int, settling: Collection[str] = ()) -> list[Notice]:
        """Tell every new fact, and POST again what the webhook has not taken yet; the facts this process told.

        ``settling``: sources and feeds (``source:NAME``, ``feed:NAME``) whose state in the store is from
        before a start and about to be renewed (the daemon's first poll of them is under way): their state
        is not told yet, so a restart after a night down does not page "Stale" and then "OK" seconds later.
        """
        try:
            found = self.notices(now_ms, settling)
        except (SQLAlchemyError, OSError) as exc:
            message = db_error_message(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
            log.error("cannot read the health from the store: %s", message)
            return []
        told = [notice for notice in found if self._claim(notice, now_ms)]
        for notice in told:
            (log.warning if notice.problem else log.info)("%s", notice.text)
            if self._post(notice.key, notice.body()):
                self.sent.append(notice)
        self._retry(now_ms)
        return told

    def notices(self, now_ms: int, settling: Collection[str] = ()) -> list[Notice]:
        from exchange.confirm import late_closures
        from exchange.publish import held_back_now

        held = held_back_now(self.engine)
        with self.engine.connect() as conn:
            report = read_health(conn, self.config, now_ms)
            told = self._refused_told(conn)
            # the look back for a refusal's start or end only when there is one (most watches: none)
            spells = refusal_spells(conn, told) if told or report.refused else {}
            found = [n for kind, states in (("source", report.sources), ("feed", report.feeds)) for h in states
                     if f"{kind}:{h.name}" not in settling and (n := self._state_notice(conn, kind, h)) is not None]
            late = late_closures(conn, now_ms, self.config.publish.waze_unseen_after_min, held, self.config.zone)
        for event_id, reason in sorted(held.items()):
            digest = hashlib.sha256(reason.encode()).hexdigest()[:16]
            found.append(Notice(f"held-back:{event_id}:{digest}", "held-back", event_id,
                                f"event {event_id}: {reason}", detail=reason))  # the reason says "held back"
        for target, (still, since, reason) in sorted(spells.items()):
            notice = self._refusal_notice(target, still, since, reason, told_refused=target in told)
            if notice is not None:
                found.append(notice)
        for closure_id, status in late:
            text = status.warning(closure_id)
            if text is not None:
                found.append(Notice(f"late-closure:{closure_id}", "late-closure", closure_id, text, detail=text))
        return found

    @staticmethod
    def _refusal_notice(target: str, still: bool, since: int, reason: str, *, told_refused: bool) -> Notice | None:
        """A target's refusal, once per spell however its wording moves (how many events, which first), and
        its end once: a publish that carried it again (which also stops a retry of the refusal)."""
        if still:
            return Notice(f"publish-refused:{target}:{since}", "publish-refused", target,
                          f"{target} was not published: {reason}; its last good feeds stay served",
                          state="Refused", since_ms=since, detail=reason)
        if not told_refused:
            return None
        return Notice(f"publish-refused:{target}:{since}:published", "publish-refused", target,
                      f"{target} is published again", state="OK", since_ms=since, problem=False)

    @staticmethod
    def _refused_told(conn: Connection) -> set[str]:
        """The targets whose last refusal notice is a refusal (no "published again" told after it)."""
        last: dict[str, str | None] = {}
        for subject, state in conn.execute(
                select(notifications.c.subject, notifications.c.state)
                .where(notifications.c.kind == "publish-refused").order_by(notifications.c.sent_ms)):
            last[subject] = state
        return {subject for subject, state in last.items() if state == "Refused"}

    def _state_notice(self, conn: Connection, kind: str, health: Health) -> Notice | None:
        """A state worth telling: a problem not told yet, or OK again after one."""
        if health.since_ms is None:  # never polled or published: a new install, nothing has gone wrong yet
            return None
        last = conn.execute(
            select(notifications.c.state, notifications.c.body)
            .where(notifications.c.kind == kind, notifications.c.subject == health.name)
            .order_by(notifications.c.sent_ms.desc()).limit(1)
        ).one_or_none()
        told, posted = (last.state, last.body is not None) if last is not None else (None, False)
        since = iso(health.since_ms)
        text = f"{kind} {health.name} is {health.state} since {since}: {health.detail}"
        key = f"{kind}:{health.name}:{health.state}:{health.since_ms}"
        if told == health.state:
            # told in the log only, before a webhook was set up: the webhook hears of a problem still going on
            if posted or health.state is State.OK or self.config.notify.webhook_url is None:
                return None  # not a change: the same state again (its since may have moved)
            key, text = f"{key}:webhook", f"{text} (going on since before the webhook was set up)"
        elif health.state is State.OK and told is None:
            return None  # OK all along
        return Notice(key, kind, health.name, text, state=str(health.state), since_ms=health.since_ms,
                      detail=health.detail, problem=health.state is not State.OK)

    def _claim(self, notice: Notice, now_ms: int) -> bool:
        webhook = self.config.notify.webhook_url is not None
        try:
            with writing(self.engine) as conn:
                conn.execute(insert(notifications).values(
                    key=notice.key[:400], kind=notice.kind, subject=notice.subject[:300], state=notice.state,
                    sent_ms=now_ms, text=notice.text, body=notice.body() if webhook else None,
                    attempt_ms=now_ms if webhook else None,
                ))
        except IntegrityError:
            return False  # told already, by this process before or by another instance
        except SQLAlchemyError as exc:
            log.error("cannot record a notification: %s", db_error_message(exc))
            return False
        return True

    def _retry(self, now_ms: int) -> None:
        """POST again, at most every :data:`RETRY_EVERY_MS`, what the webhook did not take; give up after a day,
        or once a newer fact about the same subject was told."""
        if self.config.notify.webhook_url is None:
            return
        pending = notifications.c.delivered_ms.is_(None) & notifications.c.body.is_not(None)
        try:
            with writing(self.engine) as conn:
                expired = conn.execute(
                    update(notifications).where(pending, notifications.c.sent_ms < now_ms - GIVE_UP_AFTER_MS)
                    .values(delivered_ms=0).returning(notifications.c.text)).scalars().all()
                # a fact told since about the same subject replaces it: "Offline" sent again after "OK" would
                # leave the chat saying the source is down when it is up
                newer = aliased(notifications)
                conn.execute(update(notifications).where(pending, exists().where(
                    newer.c.kind == notifications.c.kind, newer.c.subject == notifications.c.subject,
                    newer.c.sent_ms > notifications.c.sent_ms)).values(delivered_ms=0))
                due = conn.execute(
                    update(notifications).where(pending, notifications.c.attempt_ms <= now_ms - RETRY_EVERY_MS)
                    .values(attempt_ms=now_ms).returning(notifications.c.key, notifications.c.body)).all()
        except SQLAlchemyError as exc:
            log.error("cannot read the notifications to send again: %s", db_error_message(exc))
            return
        for text in expired:
            log.error("webhook: gave up, not delivered for a day: %s", text)
        for key, body in due:
            if self._post(key, body):
                log.info("webhook: delivered at last: %s", body.get("text"))

    def _post(self, key: str, body: dict[str, Any]) -> bool:
        """POST one notification; on success it is marked delivered, else it is sent again later."""
        url = self.config.notify.webhook_url
        if not url:
            return False
        import httpx

        from adapters.http import outbound_client
        from exchange.errors import ConfigError

        try:
            with outbound_client(self.config.http, httpx.Timeout(self.config.notify.timeout_s),
                                 transport=self.transport) as client:
                response = client.post(url, json=body)
            problem = f"the receiver answered HTTP {response.status_code}" if response.status_code >= 400 else None
        except httpx.HTTPError as exc:
            problem = f"cannot POST ({type(exc).__name__})"
        except ConfigError as exc:  # the [http] proxy or CA bundle cannot be used
            problem = exc.message
        if problem is not None:
            log.warning("webhook: %s; sent again in a minute or two: %s", problem, body.get("text"))
            return False
        try:
            with writing(self.engine) as conn:
                conn.execute(update(notifications).where(notifications.c.key == key).values(delivered_ms=now()))
        except SQLAlchemyError as exc:  # it was delivered; at worst it is sent once more
            log.error("cannot record a delivered notification: %s", db_error_message(exc))
        return True
