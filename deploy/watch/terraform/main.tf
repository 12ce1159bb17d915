# orgscan watch, in the security account: the same as ../cloudformation/orgscan-watch.yaml. The
# provider must be in us-east-1, where IAM's events arrive. Permissions must match
# ../../permissions.json (watch_function), which tests/integration/deploy/test_deploy_watch.py checks.

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  tags = merge(var.tags, { "orgscan:purpose" = "watch" })
}

resource "aws_cloudwatch_event_bus" "watch" {
  name = "orgscan-watch"
  tags = local.tags
}

data "aws_iam_policy_document" "bus" {
  statement {
    sid       = "OrganizationMayForwardKeyEvents"
    effect    = "Allow"
    actions   = ["events:PutEvents"]
    resources = [aws_cloudwatch_event_bus.watch.arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalOrgID"
      values   = [var.organization_id]
    }
  }
}

resource "aws_cloudwatch_event_bus_policy" "watch" {
  event_bus_name = aws_cloudwatch_event_bus.watch.name
  policy         = data.aws_iam_policy_document.bus.json
}

resource "aws_sqs_queue" "dead_letters" {
  name_prefix               = "orgscan-watch-dead-letters-"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
  tags                      = local.tags
}

data "aws_iam_policy_document" "dead_letters" {
  statement {
    sid       = "RuleDeliveryFailures"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.key_events.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "dead_letters" {
  queue_url = aws_sqs_queue.dead_letters.id
  policy    = data.aws_iam_policy_document.dead_letters.json
}

resource "aws_sns_topic" "alerts" {
  name              = "orgscan-watch"
  display_name      = "orgscan watch"
  kms_master_key_id = "alias/aws/sns"
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "watch" {
  name_prefix       = "orgscan-watch-"
  retention_in_days = var.log_retention_in_days
  tags              = local.tags
}

data "aws_iam_policy_document" "trust" {
  statement {
    sid     = "TrustLambda"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_iam_policy_document" "function" {
  statement {
    sid       = "EnterAuditRoles"
    effect    = "Allow"
    actions   = ["sts:AssumeRole"]
    resources = ["arn:${data.aws_partition.current.partition}:iam::*:role/${var.audit_role_name}"]
  }

  statement {
    sid       = "FindManagementAccount"
    effect    = "Allow"
    actions   = ["organizations:DescribeOrganization"]
    resources = ["*"]
  }

  statement {
    sid       = "PublishAlerts"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }

  statement {
    sid       = "DeadLetter"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dead_letters.arn]
  }

  statement {
    sid       = "WriteLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.watch.arn}:*"]
  }
}

resource "aws_iam_role" "function" {
  name_prefix        = "orgscan-watch-"
  description        = "orgscan watch function; may assume only the audit role"
  assume_role_policy = data.aws_iam_policy_document.trust.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "function" {
  name   = "orgscan-watch"
  role   = aws_iam_role.function.id
  policy = data.aws_iam_policy_document.function.json
}

resource "aws_lambda_function" "watch" {
  function_name    = "orgscan-watch"
  description      = "orgscan watch; re-reads one IAM user's keys live after a key event"
  runtime          = "python3.12"
  architectures    = ["x86_64"]
  handler          = "orgscan.watch.lambda_entry.handler"
  filename         = var.package_path
  source_code_hash = filebase64sha256(var.package_path)
  role             = aws_iam_role.function.arn
  memory_size      = 256
  timeout          = 120
  tags             = local.tags

  environment {
    variables = {
      ORGSCAN_TOPIC_ARN = aws_sns_topic.alerts.arn
      ORGSCAN_CONFIG    = "orgscan-config.yaml"
    }
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dead_letters.arn
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.watch.name
  }

  depends_on = [aws_iam_role_policy.function]
}

resource "aws_cloudwatch_event_rule" "key_events" {
  name           = "orgscan-watch-key-events"
  description    = "IAM CreateAccessKey, and UpdateAccessKey to Active, that succeeded"
  event_bus_name = aws_cloudwatch_event_bus.watch.name
  event_pattern  = file("${path.module}/../event-pattern.json")
  tags           = local.tags
}

resource "aws_cloudwatch_event_target" "watch" {
  rule           = aws_cloudwatch_event_rule.key_events.name
  event_bus_name = aws_cloudwatch_event_bus.watch.name
  target_id      = "orgscan-watch"
  arn            = aws_lambda_function.watch.arn

  dead_letter_config {
    arn = aws_sqs_queue.dead_letters.arn
  }
}

resource "aws_lambda_permission" "events" {
  statement_id  = "AllowOrgscanWatchRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.watch.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.key_events.arn
}
