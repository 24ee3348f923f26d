variable "project" {
  description = "The Google Cloud project of the network."
  type        = string
}

variable "region" {
  description = "The region of the subnet, the router and the NAT (the cluster's region)."
  type        = string
}

variable "name" {
  description = "The VPC's name; the subnet, router and NAT are named after it."
  type        = string
}

variable "nodes_cidr" {
  description = "The subnet's primary range: the nodes' addresses."
  type        = string
  default     = "10.10.0.0/22"
}

variable "pods_cidr" {
  description = "The secondary range of the pods' addresses."
  type        = string
  default     = "10.20.0.0/16"
}

variable "services_cidr" {
  description = "The secondary range of the Services' cluster addresses."
  type        = string
  default     = "10.30.0.0/20"
}
