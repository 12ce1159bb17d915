output "event_bus_arn" {
  description = "The bus every account's forwarder targets (forwarder module's event_bus_arn)."
  value       = aws_cloudwatch_event_bus.watch.arn
}

output "topic_arn" {
  description = "Subscribe here for violations (JSON with the sweep's SARIF fingerprint)."
  value       = aws_sns_topic.alerts.arn
}

output "dead_letter_queue_url" {
  description = "Events that could not be evaluated or delivered; it should stay empty."
  value       = aws_sqs_queue.dead_letters.id
}

output "function_role_arn" {
  description = "Add it to the audit role's trust (deploy/terraform's watch_principal_arn)."
  value       = aws_iam_role.function.arn
}
