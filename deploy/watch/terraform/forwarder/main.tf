# orgscan watch forwarder for one account: the same as
# ../../cloudformation/orgscan-watch-forwarder.yaml. The provider must be in us-east-1, where
# IAM's events arrive. Permissions must match ../../../permissions.json (watch_forwarder).

data "aws_caller_identity" "current" {}

locals {
  tags = merge(var.tags, { "orgscan:purpose" = "watch-forwarder" })
}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "TrustEventBridge"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_iam_policy_document" "forward" {
  statement {
    sid       = "ForwardKeyEvents"
    effect    = "Allow"
    actions   = ["events:PutEvents"]
    resources = [var.event_bus_arn]
  }
}

resource "aws_iam_role" "forwarder" {
  name_prefix        = "orgscan-watch-forwarder-"
  description        = "Lets EventBridge put this account's key events on the orgscan watch bus"
  assume_role_policy = data.aws_iam_policy_document.trust.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "forwarder" {
  name   = "orgscan-watch-forward"
  role   = aws_iam_role.forwarder.id
  policy = data.aws_iam_policy_document.forward.json
}

resource "aws_cloudwatch_event_rule" "key_events" {
  name          = "orgscan-watch-forward-key-events"
  description   = "IAM CreateAccessKey, and UpdateAccessKey to Active, that succeeded"
  event_pattern = file("${path.module}/../../event-pattern.json")
  tags          = local.tags
}

resource "aws_cloudwatch_event_target" "bus" {
  rule      = aws_cloudwatch_event_rule.key_events.name
  target_id = "orgscan-watch-bus"
  arn       = var.event_bus_arn
  role_arn  = aws_iam_role.forwarder.arn
}
