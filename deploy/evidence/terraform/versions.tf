terraform {
  required_version = ">= 1.3"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # object_lock_enabled on aws_s3_bucket, the separate aws_s3_bucket_* configuration resources
      version = ">= 5.0"
    }
  }
}
