variable "cluster_name" {
  description = "Name of the EKS cluster; also the prefix of its IAM roles and node groups."
  type        = string

  validation {
    condition     = can(regex("^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must be 1-100 letters, digits, hyphens or underscores, starting with a letter or digit."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes version of the control plane (e.g. \"1.32\"); null takes the EKS default."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Subnets of the control plane's network interfaces, in at least two availability zones."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "EKS needs subnet_ids in at least two availability zones."
  }
}

variable "node_subnet_ids" {
  description = "Subnets of the worker nodes (usually private ones); null uses subnet_ids."
  type        = list(string)
  default     = null
}

variable "endpoint_public_access" {
  description = "Whether the Kubernetes API endpoint is reachable from the internet (limited by public_access_cidrs)."
  type        = bool
  default     = true
}

variable "public_access_cidrs" {
  description = "CIDR blocks allowed to reach the public Kubernetes API endpoint."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "enabled_cluster_log_types" {
  description = "Control-plane log types sent to CloudWatch Logs."
  type        = list(string)
  default     = ["api", "audit", "authenticator"]
}

variable "cpu_instance_types" {
  description = "Instance types of the CPU node group (the runner, the Dask scheduler and CPU workers)."
  type        = list(string)
  default     = ["m6i.2xlarge"]
}

variable "cpu_capacity_type" {
  description = "ON_DEMAND or SPOT for the CPU node group."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.cpu_capacity_type)
    error_message = "cpu_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "cpu_min_size" {
  description = "Minimum number of CPU nodes."
  type        = number
  default     = 1
}

variable "cpu_desired_size" {
  description = "Initial number of CPU nodes (an autoscaler changes it afterwards; Terraform then leaves it alone)."
  type        = number
  default     = 2
}

variable "cpu_max_size" {
  description = "Maximum number of CPU nodes."
  type        = number
  default     = 10
}

variable "cpu_disk_size_gib" {
  description = "Root volume size of each CPU node, GiB."
  type        = number
  default     = 50
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU node group (GPU Dask workers for training and prediction)."
  type        = list(string)
  default     = ["g5.xlarge"]
}

variable "gpu_ami_type" {
  description = "EKS AMI type of the GPU node group: AL2023_x86_64_NVIDIA, or AL2_x86_64_GPU for Kubernetes up to 1.32."
  type        = string
  default     = "AL2023_x86_64_NVIDIA"

  validation {
    condition     = contains(["AL2023_x86_64_NVIDIA", "AL2_x86_64_GPU"], var.gpu_ami_type)
    error_message = "gpu_ami_type must be AL2023_x86_64_NVIDIA or AL2_x86_64_GPU."
  }
}

variable "gpu_capacity_type" {
  description = "ON_DEMAND or SPOT for the GPU node group."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.gpu_capacity_type)
    error_message = "gpu_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "gpu_min_size" {
  description = "Minimum number of GPU nodes; 0 lets the group scale to zero between runs."
  type        = number
  default     = 0
}

variable "gpu_desired_size" {
  description = "Initial number of GPU nodes (an autoscaler changes it afterwards; Terraform then leaves it alone)."
  type        = number
  default     = 0
}

variable "gpu_max_size" {
  description = "Maximum number of GPU nodes."
  type        = number
  default     = 4
}

variable "gpu_disk_size_gib" {
  description = "Root volume size of each GPU node, GiB (CUDA images are large)."
  type        = number
  default     = 100
}

variable "tags" {
  description = "Tags for the cluster, its roles and node groups."
  type        = map(string)
  default     = {}
}
