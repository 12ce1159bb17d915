variable "event_bus_arn" {
  description = "The event_bus_arn output of the watch module in the security account."
  type        = string

  validation {
    condition     = can(regex("^arn:aws(-cn|-us-gov)?:events:[a-z0-9-]+:[0-9]{12}:event-bus/[\\w.-]{1,256}$", var.event_bus_arn))
    error_message = "The event_bus_arn must be an EventBridge event bus ARN."
  }
}

variable "tags" {
  description = "Tags for the role and the rule."
  type        = map(string)
  default     = {}
}
