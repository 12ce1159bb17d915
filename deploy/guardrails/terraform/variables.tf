variable "target_ids" {
  description = "The OUs (ou-...) or accounts (12 digits) to attach the policy to. Never the root unless every account, workloads included, should lose new access keys."
  type        = list(string)

  validation {
    condition     = length(var.target_ids) > 0 && alltrue([for id in var.target_ids : can(regex("^(ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32}|[0-9]{12})$", id))])
    error_message = "Each target_ids entry must be an OU id, the root id or an account id."
  }
}

variable "approved_tag_key" {
  description = "The principal tag that exempts a principal (a provisioning pipeline's role)."
  type        = string
  default     = "orgscan-access-key-creator"

  validation {
    condition     = can(regex("^[\\w.:/=+@-]{1,128}$", var.approved_tag_key))
    error_message = "The approved_tag_key must be 1-128 of A-Za-z0-9_.:/=+@-."
  }
}

variable "approved_tag_value" {
  description = "The value the approved principals' tag must have."
  type        = string
  default     = "approved"

  validation {
    condition     = can(regex("^[\\w.:/=+@-]{1,256}$", var.approved_tag_value))
    error_message = "The approved_tag_value must be 1-256 of A-Za-z0-9_.:/=+@-."
  }
}

variable "tags" {
  description = "Tags for the policy."
  type        = map(string)
  default     = {}
}
