# orgscan roles for one account: the read-only audit role and, only when enabled, a role that can
# deactivate (never delete) access keys and a role that imports orgscan's findings into Security
# Hub CSPM. The same as ../cloudformation/orgscan-roles.yaml; the
# permissions must match ../permissions.json, which tests/integration/deploy/test_deploy.py checks.

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  iam_users                 = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:user/*"
  remediation_principal_arn = coalesce(var.remediation_principal_arn, var.scanning_principal_arn)

  # The account's own custom integration, in any region: publish-securityhub imports there only.
  securityhub_product = "arn:${data.aws_partition.current.partition}:securityhub:*:${data.aws_caller_identity.current.account_id}:product/${data.aws_caller_identity.current.account_id}/default"
  securityhub_hub     = "arn:${data.aws_partition.current.partition}:securityhub:*:${data.aws_caller_identity.current.account_id}:hub/default"
}

data "aws_iam_policy_document" "audit_trust" {
  statement {
    sid     = "TrustScanningPrincipal"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = compact([var.scanning_principal_arn, var.watch_principal_arn])
    }

    dynamic "condition" {
      for_each = var.external_id == null ? [] : [var.external_id]
      content {
        test     = "StringEquals"
        variable = "sts:ExternalId"
        values   = [condition.value]
      }
    }
  }
}

data "aws_iam_policy_document" "audit" {
  statement {
    sid    = "CountAccessKeys"
    effect = "Allow"
    actions = [
      "iam:GenerateCredentialReport",
      "iam:GetAccessKeyLastUsed",
      "iam:GetAccountSummary",
      "iam:GetCredentialReport",
      "iam:ListAccessKeys",
      "iam:ListUsers",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role" "audit" {
  name                 = var.audit_role_name
  description          = "orgscan audit role, read-only; counts active IAM access keys per user"
  assume_role_policy   = data.aws_iam_policy_document.audit_trust.json
  max_session_duration = var.max_session_duration
  tags                 = merge(var.tags, { "orgscan:purpose" = "audit-read-only" })
}

resource "aws_iam_role_policy" "audit" {
  name   = "orgscan-audit-read-only"
  role   = aws_iam_role.audit.id
  policy = data.aws_iam_policy_document.audit.json
}

data "aws_iam_policy_document" "remediation_trust" {
  statement {
    sid     = "TrustRemediationPrincipal"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = [local.remediation_principal_arn]
    }

    dynamic "condition" {
      for_each = var.external_id == null ? [] : [var.external_id]
      content {
        test     = "StringEquals"
        variable = "sts:ExternalId"
        values   = [condition.value]
      }
    }
  }
}

data "aws_iam_policy_document" "remediation" {
  statement {
    sid       = "ReadAccessKeys"
    effect    = "Allow"
    actions   = ["iam:GetAccessKeyLastUsed", "iam:ListAccessKeys"]
    resources = [local.iam_users]
  }

  statement {
    sid       = "DeactivateAccessKeys"
    effect    = "Allow"
    actions   = ["iam:UpdateAccessKey"]
    resources = [local.iam_users]
  }
}

resource "aws_iam_role" "remediation" {
  count = var.enable_remediation_role ? 1 : 0

  name                 = var.remediation_role_name
  description          = "orgscan remediation role; deactivates IAM users' access keys, never deletes"
  assume_role_policy   = data.aws_iam_policy_document.remediation_trust.json
  max_session_duration = var.max_session_duration
  tags                 = merge(var.tags, { "orgscan:purpose" = "deactivate-access-keys" })
}

resource "aws_iam_role_policy" "remediation" {
  count = var.enable_remediation_role ? 1 : 0

  name   = "orgscan-deactivate-access-keys"
  role   = aws_iam_role.remediation[0].id
  policy = data.aws_iam_policy_document.remediation.json
}

data "aws_iam_policy_document" "securityhub_import_trust" {
  statement {
    sid     = "TrustScanningPrincipal"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = [var.scanning_principal_arn]
    }

    dynamic "condition" {
      for_each = var.external_id == null ? [] : [var.external_id]
      content {
        test     = "StringEquals"
        variable = "sts:ExternalId"
        values   = [condition.value]
      }
    }
  }
}

data "aws_iam_policy_document" "securityhub_import" {
  statement {
    sid       = "ImportOwnFindings"
    effect    = "Allow"
    actions   = ["securityhub:BatchImportFindings"]
    resources = [local.securityhub_product]
  }

  statement {
    sid       = "SetOwnFindingsWorkflow"
    effect    = "Allow"
    actions   = ["securityhub:BatchUpdateFindings"]
    resources = [local.securityhub_hub]
  }
}

resource "aws_iam_role" "securityhub_import" {
  count = var.enable_securityhub_import_role ? 1 : 0

  name                 = var.securityhub_import_role_name
  description          = "orgscan Security Hub import role; imports this account's findings, nothing else"
  assume_role_policy   = data.aws_iam_policy_document.securityhub_import_trust.json
  max_session_duration = var.max_session_duration
  tags                 = merge(var.tags, { "orgscan:purpose" = "securityhub-import" })
}

resource "aws_iam_role_policy" "securityhub_import" {
  count = var.enable_securityhub_import_role ? 1 : 0

  name   = "orgscan-securityhub-import"
  role   = aws_iam_role.securityhub_import[0].id
  policy = data.aws_iam_policy_document.securityhub_import.json
}
