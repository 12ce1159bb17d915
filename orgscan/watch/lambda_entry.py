"""The AWS Lambda entry point: `orgscan.watch.lambda_entry.handler`.

Environment:
- `ORGSCAN_TOPIC_ARN` (required): the SNS topic that receives violations.
- `ORGSCAN_CONFIG`: the orgscan config file, default `orgscan-config.yaml` beside the code
  (deploy/watch/build.sh puts it into the package). Its `exceptions`, `role` and
  `organization.management_account` apply exactly as in a sweep.

A violation is published; every other verdict is only logged. Events that cannot be evaluated
(not understood, or the account unreadable) raise: Lambda retries them and then hands them to
the dead-letter queue, so none is dropped silently. Nothing from the event body is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from orgscan.aws.clients import ClientFactory
from orgscan.aws.ratelimit import CallCounter, RateLimiter
from orgscan.config import Config, load_config
from orgscan.watch.alert import Renderer, render_json
from orgscan.watch.events import parse_event
from orgscan.watch.handler import check
from orgscan.watch.render import summary
from orgscan.watch.result import Verdict, WatchResult

TOPIC_VARIABLE = "ORGSCAN_TOPIC_ARN"
CONFIG_VARIABLE = "ORGSCAN_CONFIG"
DEFAULT_CONFIG = "orgscan-config.yaml"

log = logging.getLogger("orgscan.watch")


class WatchFailed(Exception):
    """The event could not be evaluated; raised so that Lambda retries, then dead-letters it."""


async def publish(
    result: WatchResult, config: Config, topic_arn: str, render: Renderer = render_json
) -> str:
    """Publish the result's alert to SNS; the message id."""
    message = render(result)
    async with (
        ClientFactory(config.scan) as factory,
        factory.client("sns", RateLimiter(config.scan.management_rate_limit), CallCounter()) as sns,
    ):
        response = await sns.publish(
            TopicArn=topic_arn,
            Subject=message.subject,
            Message=message.body,
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in message.attributes.items()
            },
        )
    return str(response["MessageId"])


async def watch(
    event: dict[str, Any], config: Config, topic_arn: str
) -> tuple[WatchResult, str | None]:
    """Evaluate the event; publish a violation. The result and the SNS message id, if any."""
    # parse_event raises EventError, which names the field and never echoes the event.
    result = await check(parse_event(event), config)
    if result.verdict is Verdict.VIOLATION:
        return result, await publish(result, config, topic_arn)
    return result, None


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    log.setLevel(logging.INFO)
    topic_arn = os.environ.get(TOPIC_VARIABLE)
    if not topic_arn:
        raise WatchFailed(f"{TOPIC_VARIABLE} is not set")
    config = load_config(Path(os.environ.get(CONFIG_VARIABLE, DEFAULT_CONFIG)))
    result, message_id = asyncio.run(watch(event, config, topic_arn))
    facts = summary(result)
    line = json.dumps({**facts, "message_id": message_id}, sort_keys=True)
    if result.verdict is Verdict.UNREADABLE:
        log.error("orgscan watch: %s", line)
        raise WatchFailed(f"account {result.event.account_id} could not be read: {facts['error']}")
    log.log(logging.WARNING if message_id else logging.INFO, "orgscan watch: %s", line)
    return {**facts, "message_id": message_id}
