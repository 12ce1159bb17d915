variable "bucket_name" {
  description = "The evidence bucket's name (orgscan --upload s3://BUCKET/PREFIX/)."
  type        = string
}

variable "retention_mode" {
  # No default, as orgscan's --retain-mode has none: COMPLIANCE cannot be shortened or removed by
  # anyone, the account's root user included, until it expires.
  description = "Default Object Lock mode for every new object version: COMPLIANCE or GOVERNANCE."
  type        = string

  validation {
    condition     = contains(["COMPLIANCE", "GOVERNANCE"], var.retention_mode)
    error_message = "retention_mode must be COMPLIANCE or GOVERNANCE."
  }
}

variable "retention_days" {
  description = "Default Object Lock retention in days, for versions written without their own."
  type        = number
  default     = 400

  validation {
    condition     = var.retention_days >= 1 && var.retention_days <= 36500 && floor(var.retention_days) == var.retention_days
    error_message = "retention_days must be a whole number of days, 1 to 36500."
  }
}

variable "bucket_key_arn" {
  description = "A symmetric KMS key for the bucket's default encryption; null creates one."
  type        = string
  default     = null
}

variable "signing_key_arn" {
  description = "An ECC_NIST_P256 SIGN_VERIFY KMS key for --sign; null creates one."
  type        = string
  default     = null
}

variable "signing_key_alias" {
  description = "The alias of the signing key this module creates (awskms:///alias/NAME)."
  type        = string
  default     = "alias/orgscan-evidence"
}

variable "writer_role_name" {
  description = "The evidence writer role; it may sign and upload, never delete."
  type        = string
  default     = "OrgScanEvidenceWriter"
}

variable "github_repository" {
  description = "owner/name of the repository whose workflow assumes the writer role through GitHub's OIDC provider (which must exist in this account); null for no GitHub trust."
  type        = string
  default     = null
}

variable "github_branch" {
  # A signature is the auditor's trust anchor: a workflow edited on another branch must not sign.
  description = "The only branch whose workflow runs may assume the writer role."
  type        = string
  default     = "main"
}

variable "trusted_principal_arn" {
  description = "An IAM principal (e.g. the scanning principal) that may assume the writer role; null for none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
