output "bucket_name" {
  description = "orgscan --upload s3://BUCKET/PREFIX/"
  value       = aws_s3_bucket.evidence.bucket
}

output "bucket_key_arn" {
  description = "The bucket's default encryption key."
  value       = local.bucket_key_arn
}

output "signing_key_arn" {
  description = "orgscan --sign awskms:///ARN, and verify --key awskms:///ARN"
  value       = local.signing_key_arn
}

output "writer_role_arn" {
  description = "The evidence writer role (the workflow's ORGSCAN_EVIDENCE_ROLE_ARN)."
  value       = aws_iam_role.writer.arn
}
