output "audit_role_arn" {
  description = "The role orgscan assumes in this account (role.name)."
  value       = aws_iam_role.audit.arn
}

output "remediation_role_arn" {
  description = "The role that can deactivate access keys in this account; null when disabled."
  value       = one(aws_iam_role.remediation[*].arn)
}

output "securityhub_import_role_arn" {
  description = "The role that imports this account's findings into Security Hub CSPM; null when disabled."
  value       = one(aws_iam_role.securityhub_import[*].arn)
}
