output "rule_arn" {
  description = "The rule on this account's default bus that forwards key events."
  value       = aws_cloudwatch_event_rule.key_events.arn
}
