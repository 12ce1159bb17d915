variable "organization_id" {
  description = "The organization whose accounts may put events on the watch's bus (o-...)."
  type        = string

  validation {
    condition     = can(regex("^o-[a-z0-9]{10,32}$", var.organization_id))
    error_message = "The organization_id must be o- followed by 10-32 lowercase letters or digits."
  }
}

variable "package_path" {
  description = "The function package built by deploy/watch/build.sh (a .zip file)."
  type        = string
}

variable "audit_role_name" {
  description = "orgscan's role.name; the only role the function may assume."
  type        = string
  default     = "OrgScanAudit"
}

variable "log_retention_in_days" {
  description = "How long the function's log lines (one per event) are kept."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
