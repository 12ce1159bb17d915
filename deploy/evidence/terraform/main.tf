# orgscan evidence: the same as ../cloudformation/orgscan-evidence-bucket.yaml. A write-once
# bucket (versioning, Object Lock with a default retention, SSE-KMS, TLS only, no deletes), the
# KMS key that signs attestations, and the evidence writer role. The writer's permissions must
# match ../../permissions.json (evidence_writer), which tests/test_deploy_evidence.py checks.

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  tags            = merge(var.tags, { "orgscan:purpose" = "evidence" })
  bucket_key_arn  = var.bucket_key_arn != null ? var.bucket_key_arn : aws_kms_key.bucket[0].arn
  signing_key_arn = var.signing_key_arn != null ? var.signing_key_arn : aws_kms_key.signing[0].arn
}

data "aws_iam_policy_document" "key_admin" {
  statement {
    sid       = "AccountAdministersThroughIam"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_key" "bucket" {
  count               = var.bucket_key_arn == null ? 1 : 0
  description         = "orgscan evidence bucket default encryption"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.key_admin.json
  tags                = local.tags

  lifecycle {
    # Without the key, every evidence object ever written is unreadable.
    prevent_destroy = true
  }
}

resource "aws_kms_key" "signing" {
  count                    = var.signing_key_arn == null ? 1 : 0
  description              = "orgscan evidence attestation signing (ECDSA P-256, SHA-256)"
  customer_master_key_spec = "ECC_NIST_P256"
  key_usage                = "SIGN_VERIFY"
  policy                   = data.aws_iam_policy_document.key_admin.json
  tags                     = local.tags

  lifecycle {
    # Its public key verifies every attestation it signed.
    prevent_destroy = true
  }
}

resource "aws_kms_alias" "signing" {
  count         = var.signing_key_arn == null ? 1 : 0
  name          = var.signing_key_alias
  target_key_id = aws_kms_key.signing[0].key_id
}

resource "aws_s3_bucket" "evidence" {
  bucket              = var.bucket_name
  object_lock_enabled = true
  tags                = local.tags

  lifecycle {
    # Evidence outlives the module; with Object Lock S3 would refuse to delete it anyway.
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "evidence" {
  bucket = aws_s3_bucket.evidence.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "evidence" {
  bucket = aws_s3_bucket.evidence.id

  rule {
    default_retention {
      mode = var.retention_mode
      days = var.retention_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.evidence]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "evidence" {
  bucket = aws_s3_bucket.evidence.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.bucket_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "evidence" {
  bucket                  = aws_s3_bucket.evidence.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "evidence" {
  bucket = aws_s3_bucket.evidence.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.evidence.arn, "${aws_s3_bucket.evidence.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # Object Lock refuses to delete a locked version; this also refuses delete markers, deleting
  # versions once their retention has passed, shortening or removing a GOVERNANCE retention and
  # lifecycle expiry. No exception: the account's root user can always replace this policy (S3
  # PutBucketPolicy and DeleteBucketPolicy), which is the break-glass path, and a loud one.
  statement {
    sid    = "DenyDeletingEvidence"
    effect = "Deny"
    actions = [
      "s3:BypassGovernanceRetention",
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
      "s3:PutLifecycleConfiguration",
    ]
    resources = [aws_s3_bucket.evidence.arn, "${aws_s3_bucket.evidence.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }

  # A versioned bucket keeps every version, but a new one would become what a reader gets:
  # only a write that S3 refuses when the key exists (If-None-Match: *) is allowed (S3 User
  # Guide, "Enforce conditional writes on Amazon S3 buckets").
  statement {
    sid       = "DenyReplacingEvidence"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.evidence.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["true"]
    }
  }
}

resource "aws_s3_bucket_policy" "evidence" {
  bucket = aws_s3_bucket.evidence.id
  policy = data.aws_iam_policy_document.bucket.json

  # S3 rejects a bucket policy while Block Public Access is still being applied.
  depends_on = [aws_s3_bucket_public_access_block.evidence]
}

data "aws_iam_policy_document" "writer_trust" {
  dynamic "statement" {
    for_each = var.github_repository == null ? [] : [var.github_repository]
    content {
      sid     = "TrustGitHubWorkflow"
      effect  = "Allow"
      actions = ["sts:AssumeRoleWithWebIdentity"]

      principals {
        type        = "Federated"
        identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/token.actions.githubusercontent.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "token.actions.githubusercontent.com:aud"
        values   = ["sts.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "token.actions.githubusercontent.com:sub"
        values   = ["repo:${statement.value}:ref:refs/heads/${var.github_branch}"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.trusted_principal_arn == null ? [] : [var.trusted_principal_arn]
    content {
      sid     = "TrustPrincipal"
      effect  = "Allow"
      actions = ["sts:AssumeRole"]

      principals {
        type        = "AWS"
        identifiers = [statement.value]
      }
    }
  }
}

resource "aws_iam_role" "writer" {
  name                 = var.writer_role_name
  description          = "orgscan evidence writer; signs attestations and uploads packages, never deletes"
  assume_role_policy   = data.aws_iam_policy_document.writer_trust.json
  max_session_duration = 3600
  tags                 = local.tags

  lifecycle {
    precondition {
      condition     = var.github_repository != null || var.trusted_principal_arn != null
      error_message = "Set github_repository or trusted_principal_arn (or both), or nobody can write evidence."
    }
  }
}

data "aws_iam_policy_document" "writer" {
  statement {
    sid       = "SignAttestation"
    effect    = "Allow"
    actions   = ["kms:GetPublicKey", "kms:Sign"]
    resources = [local.signing_key_arn]
  }

  statement {
    sid       = "WriteEvidence"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:GetObjectRetention", "s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectRetention"]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::${aws_s3_bucket.evidence.bucket}/*"]
  }

  statement {
    sid       = "ReadEvidenceBucket"
    effect    = "Allow"
    actions   = ["s3:GetBucketObjectLockConfiguration", "s3:ListBucket", "s3:ListBucketVersions"]
    resources = ["arn:${data.aws_partition.current.partition}:s3:::${aws_s3_bucket.evidence.bucket}"]
  }

  statement {
    sid       = "EncryptEvidence"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [local.bucket_key_arn]
  }
}

resource "aws_iam_role_policy" "writer" {
  name   = "orgscan-evidence-writer"
  role   = aws_iam_role.writer.id
  policy = data.aws_iam_policy_document.writer.json
}
