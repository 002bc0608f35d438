variable "identity" {
  description = "How the operator's pods get AWS credentials: \"irsa\" (IAM Roles for Service Accounts, through the cluster's OIDC provider) or \"pod-identity\" (EKS Pod Identity)."
  type        = string
  default     = "irsa"

  validation {
    condition     = contains(["irsa", "pod-identity"], var.identity)
    error_message = "identity must be \"irsa\" or \"pod-identity\"."
  }
}

variable "oidc_provider_arn" {
  description = "IRSA only: the ARN of the cluster's IAM OIDC provider (arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>)."
  type        = string
  default     = null
}

variable "oidc_provider_url" {
  description = "IRSA only: the cluster's OIDC issuer URL, with or without https:// (oidc.eks.<region>.amazonaws.com/id/<id>)."
  type        = string
  default     = null
}

variable "eks_cluster_name" {
  description = "Pod Identity only: the cluster to associate the role with. Null leaves the association to you (aws eks create-pod-identity-association)."
  type        = string
  default     = null
}

variable "namespace" {
  description = "The namespace the chart is installed in (helm install -n ...)."
  type        = string
  default     = "plinth-system"
}

variable "service_account" {
  description = "The operator's ServiceAccount name: the chart's full name (the release name, plinth-operator by default) unless serviceAccount.name is set."
  type        = string
  default     = "plinth-operator"
}

variable "role_name" {
  description = "The operator's IAM role. It lives under role_path, never under /plinth/, where the operator's own policy lets it manage roles."
  type        = string
  default     = "plinth-operator"
}

variable "role_path" {
  description = "IAM path of the operator's role and policy. Must not be /plinth/ (the instance roles' path, which the operator's policy may change)."
  type        = string
  default     = "/plinth-operator/"

  validation {
    condition     = can(regex("^/([A-Za-z0-9+=,.@_-]+/)*$", var.role_path)) && !startswith(var.role_path, "/plinth/")
    error_message = "role_path must be an IAM path (/a/b/) and must not start with /plinth/: the operator could otherwise change its own role."
  }
}

variable "artifact_bucket_name" {
  description = "Name of the S3 bucket holding the webapp's release binary (spec.app.artifact = s3://<this bucket>/<key>). Globally unique."
  type        = string
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted artifact version is kept before it expires."
  type        = number
  default     = 90
}

variable "tags" {
  description = "Tags on every resource made here."
  type        = map(string)
  default     = {}
}
