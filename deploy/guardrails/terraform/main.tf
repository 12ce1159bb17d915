# orgscan guardrail: the same as ../cloudformation/orgscan-guardrail.yaml. It renders
# ../deny-access-key-creation.json itself, so the policy exists once. Apply it with the
# management account's credentials (or an Organizations delegated administrator's).

resource "aws_organizations_policy" "deny_access_key_creation" {
  name        = "orgscan-deny-access-key-creation"
  description = "No new IAM access keys, except by principals carrying the approved tag"
  type        = "SERVICE_CONTROL_POLICY"
  # Minified: an SCP may hold at most 5,120 characters.
  content = jsonencode(jsondecode(templatefile("${path.module}/../deny-access-key-creation.json", {
    ApprovedTagKey   = var.approved_tag_key
    ApprovedTagValue = var.approved_tag_value
  })))
  tags = var.tags
}

resource "aws_organizations_policy_attachment" "targets" {
  for_each = toset(var.target_ids)

  policy_id = aws_organizations_policy.deny_access_key_creation.id
  target_id = each.value
}
