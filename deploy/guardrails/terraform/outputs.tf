output "policy_id" {
  description = "The service control policy's id."
  value       = aws_organizations_policy.deny_access_key_creation.id
}
