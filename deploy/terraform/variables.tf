variable "scanning_principal_arn" {
  description = "ARN of the IAM role (or user) in the scanning (management) account that runs orgscan."
  type        = string

  validation {
    condition     = can(regex("^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:(root|(role|user)/[\\w+=,.@/-]+)$", var.scanning_principal_arn))
    error_message = "The scanning_principal_arn must be an IAM role, user or root ARN."
  }
}

variable "external_id" {
  description = "orgscan's role.external_id; null means no sts:ExternalId condition on the trust policies."
  type        = string
  default     = null

  validation {
    condition     = var.external_id == null || can(regex("^[\\w+=,.@:/-]{2,1224}$", var.external_id))
    error_message = "The external_id must be null, or 2-1224 of A-Za-z0-9+=,.@:/-_."
  }
}

variable "audit_role_name" {
  description = "orgscan's role.name."
  type        = string
  default     = "OrgScanAudit"
}

variable "max_session_duration" {
  description = "Seconds, 3600 to 43200; at least orgscan's role.duration_seconds."
  type        = number
  default     = 3600
}

variable "watch_principal_arn" {
  description = "The orgscan watch function's role (function_role_arn of deploy/watch), trusted by the audit role beside scanning_principal_arn; null means no watch."
  type        = string
  default     = null

  validation {
    condition     = var.watch_principal_arn == null || can(regex("^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[\\w+=,.@/-]+$", var.watch_principal_arn))
    error_message = "The watch_principal_arn must be null or an IAM role ARN."
  }
}

variable "enable_remediation_role" {
  description = "Create the role that can deactivate (never delete) access keys."
  type        = bool
  default     = false
}

variable "remediation_role_name" {
  description = "orgscan's remediation.role_name."
  type        = string
  default     = "OrgScanRemediation"
}

variable "remediation_principal_arn" {
  description = "Who may assume the remediation role; null means scanning_principal_arn."
  type        = string
  default     = null
}

variable "enable_securityhub_import_role" {
  description = "Create the role orgscan publish-securityhub assumes to import this account's findings into Security Hub CSPM."
  type        = bool
  default     = false
}

variable "securityhub_import_role_name" {
  description = "orgscan's securityhub.role_name."
  type        = string
  default     = "OrgScanSecurityHubImport"
}

variable "tags" {
  description = "Tags for every role."
  type        = map(string)
  default     = {}
}
