# Values come from e2e.pkrvars.hcl, which the test writes for each run.
variable "registry" { type = string }
variable "recipe" { type = string }
variable "mirrors" { type = list(string) }
variable "sign_key" { type = string }
variable "public_key" { type = string }
variable "ssh_port" { type = number }
variable "ssh_key" { type = string }
variable "root" { type = string }
variable "source_image" {
  type    = string
  default = ""
}
