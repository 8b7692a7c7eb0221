"""Sync blueprint: the scheduled HaloPSA -> Table Storage sync, a manual trigger, its status, and the
refresh of the clients HaloPSA's webhook events name."""

import json
import logging
from datetime import UTC, datetime

import azure.functions as func

from shared.api.approval import approve
from shared.api.calls import Call, respond
from shared.api.replies import Reply, json_reply
from shared.core.events import EVENTS_POISON_QUEUE, EVENTS_QUEUE
from shared.runtime.process import get_settings, get_store
from shared.sync.event_refresh import handle_event_message
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from shared.sync.status import SyncStatus, sync_status

bp = func.Blueprint()
log = logging.getLogger("halo_immy.sync")
SYNC_QUEUE = "sync-requests"


async def _run_and_judge(trigger: str) -> None:
    report = await run_sync()
    if report.outcome is Outcome.FAILED:
        # Failing the invocation lets the retry policy and the failure alerts do their work.
        raise RuntimeError(f"sync run {report.run_id} ({trigger}) failed: {report.error}")


def _status() -> SyncStatus:
    configured = get_settings().immybot is not None
    return sync_status(get_store(), datetime.now(UTC), immybot_configured=configured)


@bp.function_name("sync_timer")
@bp.timer_trigger(arg_name="timer", schedule="%SYNC_SCHEDULE%", run_on_startup=False)
@bp.retry(
    strategy="exponential_backoff",
    max_retry_count="3",
    minimum_interval="00:00:30",
    maximum_interval="00:05:00",
)
async def sync_timer(timer: func.TimerRequest) -> None:
    """Run one sync on the `%SYNC_SCHEDULE%` schedule."""
    if timer.past_due:
        log.info("sync timer is past due; running now")
    await _run_and_judge("timer")


@bp.function_name("sync_queue")
@bp.queue_trigger(arg_name="message", queue_name=SYNC_QUEUE, connection="AzureWebJobsStorage")
async def sync_queue(message: func.QueueMessage) -> None:
    """Run one sync asked for through `POST /api/sync`, once: not retried.

    host.json retries queue messages (up to maxDequeueCount, for HaloPSA's events), but a manual
    sync that failed is for an admin to look at and queue again: a failed run ends without raising
    (its record says why, and the failure alert fires on it), and a message delivered again
    because its run died mid-way (the host timeout, a restart) is dropped.
    """
    if (message.dequeue_count or 1) > 1:
        log.warning("manual sync request delivered again after its run stopped; not run again")
        return
    report = await run_sync()
    if report.outcome is Outcome.FAILED:
        log.warning("manual sync run %s failed: %s", report.run_id, report.error)


@bp.function_name("halo_events")
@bp.queue_trigger(arg_name="message", queue_name=EVENTS_QUEUE, connection="AzureWebJobsStorage")
@bp.queue_output(
    arg_name="poison", queue_name=EVENTS_POISON_QUEUE, connection="AzureWebJobsStorage"
)
async def halo_events(message: func.QueueMessage, poison: func.Out[str]) -> None:
    """Refresh the client a HaloPSA event named (with whatever else is pending), under the sync
    lease. A failure fails the invocation, so the host tries again; the last attempt writes the
    message to the poison queue itself, with the reason (shared.sync.event_refresh)."""
    answer = await handle_event_message(message.get_body(), message.dequeue_count or 1)
    if answer.poison is not None:
        poison.set(answer.poison)
    elif answer.retry is not None:
        raise RuntimeError(answer.retry)


@bp.function_name("sync_now")
@bp.route(route="sync", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
@bp.queue_output(arg_name="request", queue_name=SYNC_QUEUE, connection="AzureWebJobsStorage")
def sync_now(req: func.HttpRequest, request: func.Out[str]) -> func.HttpResponse:
    """`POST /api/sync` (admin key): queue one sync now; a run takes longer than HTTP may wait."""

    def answer() -> Reply:
        request.set(json.dumps({"requested_at": datetime.now(UTC).isoformat()}))
        body = {"status": "queued", "status_url": "/api/sync/status"}
        return Reply(202, json.dumps(body).encode(), headers={"Location": "/api/sync/status"})

    reply = respond(Call("sync_now", req.method, req.url, req.params), answer)
    return func.HttpResponse(**reply.as_kwargs())


@bp.function_name("sync_status")
@bp.route(route="sync/status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def sync_status_http(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/sync/status`: the current generation, its age, a held run, the last runs."""
    call = Call("sync_status", req.method, req.url, req.params)
    reply = respond(call, lambda: json_reply(_status()))
    return func.HttpResponse(**reply.as_kwargs())


@bp.function_name("sync_approve")
@bp.route(route="sync/approve", methods=["POST"], auth_level=func.AuthLevel.ADMIN)
def sync_approve(req: func.HttpRequest) -> func.HttpResponse:
    """`POST /api/sync/approve?run_id=` (admin key): make the held generation current, and let
    the next sync write held asset creates (shared.sync.assets).
    `?tag=SOFTWARE`: approve that rule's held ImmyBot tag removal (the next run makes it)."""
    call = Call("sync_approve", req.method, req.url, req.params)
    reply = respond(call, lambda: approve(get_store(), req.params, _status))
    return func.HttpResponse(**reply.as_kwargs())
