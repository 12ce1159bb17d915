terraform {
  required_version = ">= 1.3"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # logging_config on aws_lambda_function
      version = ">= 5.31"
    }
  }
}
