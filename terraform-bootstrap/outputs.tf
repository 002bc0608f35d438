output "role_arn" {
  description = "The operator's role. IRSA: set the chart's serviceAccount.annotations.\"eks.amazonaws.com/role-arn\" to it. Pod Identity: the association names it."
  value       = aws_iam_role.operator.arn
}

output "helm_values" {
  description = "Values for the chart (helm install -f): the ServiceAccount's name and, for IRSA, its role annotation."
  value = {
    serviceAccount = {
      name        = var.service_account
      annotations = var.identity == "irsa" ? { "eks.amazonaws.com/role-arn" = aws_iam_role.operator.arn } : {}
    }
  }
}

output "policy_arn" {
  description = "The operator's least-privilege policy (terraform-bootstrap/policy.json)."
  value       = aws_iam_policy.operator.arn
}

output "artifact_bucket_name" {
  description = "The artifact bucket: spec.app.artifact = s3://<this>/<key>."
  value       = aws_s3_bucket.artifacts.id
}

output "artifact_bucket_arn" {
  description = "The artifact bucket's ARN."
  value       = aws_s3_bucket.artifacts.arn
}

output "artifact_kms_key_arn" {
  description = "The KMS key encrypting the artifacts; roles under /plinth/ may decrypt through S3."
  value       = aws_kms_key.artifacts.arn
}
